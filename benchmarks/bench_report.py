"""Benchmark: render the report of 12 architectures x 5 seeds x 20 epochs (target < 30 s).

Not part of the test suite (pytest's testpaths is tests/); run it explicitly:

    python -m pytest benchmarks/bench_report.py

The stored tables are synthetic (no training); the architectures are throw-away
registrations of the real LeNet and ConvNet builders, so weights and feature maps are real.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from synthetic_store import factorial_specs, registered, write_store  # noqa: E402

from bench.report import render_report  # noqa: E402

SEEDS = [0, 1, 2, 3, 4]
EPOCHS = 20


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    specs = {**factorial_specs(convs=("standard", "dilated", "depthwise"), downs=("max", "strided"), prefix="abl"),
             **{f"plain-{i}": {} for i in range(6)}}
    accuracy = {(arch, s): 0.85 + 0.01 * i + 0.002 * ((s * 7 + i) % 5)
                for i, arch in enumerate(specs) for s in SEEDS}
    with registered(specs):
        out = write_store(tmp_path_factory.mktemp("bench") / "run", accuracy, SEEDS, EPOCHS, factors=specs)
        yield out


def test_render_12_archs_5_seeds_20_epochs(benchmark, store):
    path = benchmark.pedantic(render_report, args=(store,), rounds=2, iterations=1, warmup_rounds=0)
    assert path.is_file()
    assert len(list((store / "figures").glob("*.png"))) >= 12 + 10

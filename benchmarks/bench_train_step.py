"""One training step and one evaluation batch, per registered architecture.

They time exactly what a benchmark run executes (``bench.train.Training.step`` and
``bench.train.evaluate``), in the memory format the run would choose, on the embedded
digits (no files needed), with the thread count a run uses.  Compare saved runs with ``--benchmark-compare``.
"""

from __future__ import annotations

import pytest
import torch

from architectures import list_models
from bench.config import RunConfig
from bench.datasets import DataSearch, Split, load_dataset, prepare_data
from bench.devices import synchronize
from bench.train import build_training, evaluate

BATCH = 64
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module", params=DEVICES)
def data(request):
    return prepare_data(load_dataset("digits", DataSearch(download=False)), 0.0, request.param)


def _training(arch: str, data):
    device = "cuda" if data.train.images.is_cuda else "cpu"
    cfg = RunConfig(arch=arch, dataset="digits", batch_size=BATCH, val_fraction=0.0,
                    test_weights="last", device=device)
    return cfg, build_training(cfg, data)


@pytest.mark.parametrize("arch", list_models())
def test_train_step(benchmark, arch, data):
    cfg, training = _training(arch, data)
    x, y = training.batch(data, data.train, torch.arange(BATCH, device=data.train.images.device))
    benchmark.extra_info["memory_format"] = str(training.memory_format)

    def step():
        training.step(x, y)
        synchronize(cfg.device)

    with training.policy.threads():  # the thread count a run trains with (one on CPU)
        benchmark.pedantic(step, warmup_rounds=3, rounds=30, iterations=1)


@pytest.mark.parametrize("arch", list_models())
def test_eval_batch(benchmark, arch, data):
    cfg, training = _training(arch, data)
    # One full evaluation batch (digits' test split repeated up to the device's batch size).
    size = training.policy.eval_batch
    repeats = -(-size // len(data.test))
    batch = Split(data.test.images.repeat(repeats, 1, 1, 1)[:size], data.test.labels.repeat(repeats)[:size])
    with training.policy.threads():
        result = benchmark.pedantic(evaluate, args=(training, data, batch), warmup_rounds=1, rounds=10, iterations=1)
    assert 0.0 <= result.accuracy <= 1.0

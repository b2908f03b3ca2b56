"""Seed groups: runs that differ only in seed, trained together, each with the bits it gets alone.

On CPU a group steps its runs one after another, which checks the group's epoch loop
(orders, evaluation, best weights, records) against ``train_run``; tests/test_cuda.py checks
the CUDA graph with a branch per run the same way on a GPU.
"""

from __future__ import annotations

import pytest
import torch

from bench.config import RunConfig
from bench.datasets import DataSearch, load_dataset
from bench.errors import BenchError
from bench.executors import make_executor
from bench.executors.local import LocalExecutor
from bench.drivers.seed_group import train_group
from bench.tasks import DataRequest, RunTask, SeedGroupTask, execute_unit
from bench.datasets import prepare_data
from bench.train import train_run

TIMING = ("train_seconds", "eval_seconds", "train_images_per_s")


@pytest.fixture(scope="module")
def digits():
    return prepare_data(load_dataset("digits", DataSearch(download=False)), 0.1, "cpu")


def assert_same_run(got, want):
    assert got.status == want.status
    assert [{k: v for k, v in e.items() if k not in TIMING} for e in got.epochs] == \
           [{k: v for k, v in e.items() if k not in TIMING} for e in want.epochs]
    assert (got.best_epoch, got.tested_weights) == (want.best_epoch, want.tested_weights)
    assert (got.test.loss, got.test.accuracy) == (want.test.loss, want.test.accuracy)
    assert (got.test.confusion == want.test.confusion).all()
    for name, value in want.state_dict.items():
        assert torch.equal(got.state_dict[name], value), name


def test_a_group_gives_each_run_what_it_gets_alone(digits):
    # BatchNorm (running statistics per run) and a decaying learning rate.
    cfgs = [RunConfig(arch="bn-convnet", dataset="digits", seed=s, epochs=2, lr_schedule="step") for s in (0, 1, 2)]
    events = []
    grouped = train_group(cfgs, digits, lambda cfg, record: events.append((cfg.seed, record["epoch"])))
    for cfg, outcome in zip(cfgs, grouped, strict=True):
        assert outcome.seed_group == 3
        assert_same_run(outcome, train_run(cfg, digits))
    assert sorted(events) == [(s, e) for s in (0, 1, 2) for e in (1, 2)]
    assert grouped[0].epochs[0]["train_seconds"] == grouped[2].epochs[0]["train_seconds"]  # the group's time


def test_a_failing_group_fails_each_of_its_runs(monkeypatch):
    def out_of_luck(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr("bench.tasks.train_group", out_of_luck)
    tasks = tuple(RunTask(RunConfig(arch="lenet", dataset="digits", seed=s), DataRequest()) for s in (0, 1))
    records = execute_unit(SeedGroupTask(tasks))
    assert [r.run_id for r in records] == [t.config.run_id() for t in tasks]
    assert all(r.status == "failed" and "illegal memory access" in r.error for r in records)


def test_seeds_together_is_a_cuda_local_option():
    assert LocalExecutor(device="cpu", seeds_together=4).seeds_together == 1  # CPU: one run at a time
    assert LocalExecutor(device="cuda").seeds_together == 8
    assert LocalExecutor(device="cuda", seeds_together=3).describe()["seeds_together"] == 3
    with pytest.raises(BenchError, match="--seeds-together must be a positive integer"):
        LocalExecutor(device="cuda", seeds_together=0)
    with pytest.raises(BenchError, match="--seeds-together only used with --executor local"):
        make_executor("ray", device="cuda", seeds_together=2)

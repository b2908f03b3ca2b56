"""Checkpoints of stacked runs: an interrupted stack goes on where it stopped, bit for bit,
and only as the stack that saved them; otherwise it trains again from epoch 1."""

from __future__ import annotations

import pytest

import bench.checkpoint
from bench.checkpoint import CheckpointPlan, Checkpointer
from bench.config import RunConfig
from bench.datasets import DataSearch, load_dataset, prepare_data
from bench.drivers import stacked_training
from bench.drivers.stacked_training import train_stack
from bench.storage import CHECKPOINT_FILE
from conftest import run_cli, run_cli_process, start_cli
from test_checkpoint_policy import Clock
from test_resume import _scramble_global_rngs, assert_same_outcome, assert_same_tables, records, wait_for


@pytest.fixture(scope="module")
def digits():
    return prepare_data(load_dataset("digits", DataSearch(download=False)), 0.1, "cpu")


def stack(optimizer: str = "sgd", seeds=(0, 1)) -> list[RunConfig]:
    # SGD with momentum and a step schedule: optimizer and scheduler state both matter; Adam
    # (fused) keeps a step count beside its moments, and its moments in the weights' layout.
    extra = {"lr": 0.05, "lr_schedule": "step", "lr_step": 1, "lr_gamma": 0.5} if optimizer == "sgd" else {}
    return [RunConfig(arch="lenet", dataset="digits", seed=s, epochs=3, optimizer=optimizer, stacked=True, **extra)
            for s in seeds]


def plans(tmp_path, cfgs: list[RunConfig]) -> list[CheckpointPlan]:
    return [CheckpointPlan(str(tmp_path / f"{cfg.run_id()}.pt"), every=1) for cfg in cfgs]


class CrashAfterTheStackSaves(Checkpointer):
    """Saves like the real hook; once the last run of the stack has saved epoch 2, a crash."""

    last_run_id = ""

    def epoch_end(self, epoch, *args):
        super().epoch_end(epoch, *args)
        if epoch == 2 and self.run_id == self.last_run_id:
            raise KeyboardInterrupt


def interrupt_after_epoch_2(cfgs, data, saved, monkeypatch) -> None:
    monkeypatch.setattr(stacked_training, "Checkpointer", CrashAfterTheStackSaves)
    monkeypatch.setattr(CrashAfterTheStackSaves, "last_run_id", cfgs[-1].run_id())
    with pytest.raises(KeyboardInterrupt):
        train_stack(cfgs, data, plans=saved)
    monkeypatch.undo()
    _scramble_global_rngs()  # what the next process would start with: restored, not reused


def trained_epochs(cfgs, data, saved) -> tuple[list, list[tuple[int, int]]]:
    """The outcomes, and the (seed, epoch) of every epoch trained on the way."""
    trained = []
    outcomes = train_stack(cfgs, data, lambda cfg, record: trained.append((cfg.seed, record["epoch"])), saved)
    return outcomes, trained


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_an_interrupted_stack_resumes_bit_for_bit(optimizer, digits, tmp_path, monkeypatch):
    cfgs = stack(optimizer)
    reference = train_stack(cfgs, digits)
    saved = plans(tmp_path, cfgs)
    interrupt_after_epoch_2(cfgs, digits, saved, monkeypatch)

    resumed, trained = trained_epochs(cfgs, digits, saved)
    assert trained == [(0, 3), (1, 3)]  # epochs 1 and 2 came from the checkpoints
    for got, want in zip(resumed, reference, strict=True):
        assert_same_outcome(got, want)
        assert got.stacked_with == "0,1"


def test_runs_that_stopped_at_different_epochs_start_over_together(digits, tmp_path, monkeypatch):
    cfgs = stack()
    saved = plans(tmp_path, cfgs)
    interrupt_after_epoch_2(cfgs, digits, saved, monkeypatch)
    (tmp_path / f"{cfgs[1].run_id()}.pt").unlink()  # as if killed between the two runs' saves

    outcomes, trained = trained_epochs(cfgs, digits, saved)
    assert sorted(trained) == [(s, e) for s in (0, 1) for e in (1, 2, 3)]
    for got, want in zip(outcomes, train_stack(cfgs, digits), strict=True):
        assert_same_outcome(got, want)


def test_a_checkpoint_resumes_only_in_the_stack_that_saved_it(digits, tmp_path, monkeypatch):
    cfgs = stack()
    saved = plans(tmp_path, cfgs)
    interrupt_after_epoch_2(cfgs, digits, saved, monkeypatch)
    hook = Checkpointer(saved[0], cfgs[0].run_id(), stack="0")
    assert hook.restore(None, None, None, None) is None  # refused before it touches anything
    assert "saved in a stack of seeds '0,1', not '0'" in hook.problems[0]

    alone, trained = trained_epochs(cfgs[:1], digits, saved[:1])  # seed 0 in a stack of its own
    assert trained == [(0, 1), (0, 2), (0, 3)]
    assert_same_outcome(alone[0], train_stack(cfgs[:1], digits)[0])


def test_the_runs_of_a_stack_save_at_the_same_epochs(monkeypatch):
    """The time policy asks each run's clock; in a stack the first to ask decides for all,
    so a run whose evaluation ran longer does not save where the others do not."""
    clock = Clock()
    monkeypatch.setattr(bench.checkpoint, "monotonic", clock)
    shared: dict[int, bool] = {}
    plan = CheckpointPlan("unused", seconds=60.0)
    first, second = (Checkpointer(plan, run, shared_due=shared) for run in ("a", "b"))
    first._saved_at = first._epoch_at = second._saved_at = second._epoch_at = clock.now
    clock.now += 29.0
    assert not first.due(1)
    clock.now += 2.0  # the second run's own clock would now say: 31 s unsaved + 31 s next > 60 s
    assert not second.due(1)
    alone = Checkpointer(plan, "c")
    alone._saved_at = alone._epoch_at = clock.now - 31.0
    assert alone.due(1)


def test_a_stacked_grid_killed_mid_stack_resumes_to_the_same_tables(tmp_path, monkeypatch):
    grid = ["--archs", "lenet", "--dataset", "digits", "--seed-list", "0,1", "--epochs", "6", "--workers", "1",
            "--stack-seeds", "2", "--checkpoint-every", "1", "--no-report"]
    monkeypatch.setenv("CNNBENCH_NO_DOWNLOAD", "1")
    assert run_cli(*grid, "--out", str(tmp_path / "uninterrupted")) == 0
    out = tmp_path / "out"
    proc = start_cli(*grid, "--out", str(out), cache=tmp_path / "cache")
    wait_for(lambda: len(list(out.glob(f"runs/*/{CHECKPOINT_FILE}"))) == 2, proc)  # both saved an epoch
    proc.kill()
    proc.communicate()
    assert records(out) == []

    rerun = run_cli_process(*grid, "--out", str(out), cache=tmp_path / "cache")
    assert rerun.returncode == 0, rerun.stderr
    assert "(0 reused, 2 trained)" in rerun.stdout
    assert not list(out.glob(f"runs/*/{CHECKPOINT_FILE}"))
    assert_same_tables(out, tmp_path / "uninterrupted")
    assert run_cli("verify", str(out), "--arch", "lenet", "--seed", "1") == 0  # weights too, bit for bit

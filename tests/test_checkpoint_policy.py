"""The default checkpoint policy: save before about a minute of training is at risk.

A clock the test controls stands in for the epochs' wall time, so the policy is checked on
"long" epochs without training for minutes.
"""

from __future__ import annotations

import pytest

import bench.checkpoint
from bench.checkpoint import DEFAULT_CHECKPOINT_SECONDS, CheckpointPlan, Checkpointer, checkpoint_plan
from bench.cli import build_parser
from bench.config import RunConfig
from bench.datasets import DataSearch, load_dataset, prepare_data
from bench.storage import CHECKPOINT_FILE
from bench.train import train_run
from test_resume import StopAfter, assert_same_outcome


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(bench.checkpoint, "monotonic", clock)
    return clock


def saves(plan: CheckpointPlan, epoch_seconds: float, epochs: int, clock: Clock) -> list[int]:
    """The epochs after which ``plan`` saves, when every epoch takes ``epoch_seconds``."""
    hook = Checkpointer(plan, "run")
    hook._saved_at = hook._epoch_at = clock.now  # what restore() does at the start of a run
    saved = []
    for epoch in range(1, epochs + 1):
        clock.now += epoch_seconds
        if hook.due(epoch):
            saved.append(epoch)
            hook._saved_at = clock.now  # what a save does
    return saved


def test_the_default_saves_before_a_minute_of_training_is_at_risk(clock):
    default = checkpoint_plan("unused", None)
    assert default.every == 0 and default.seconds == DEFAULT_CHECKPOINT_SECONDS == 60.0
    # Epochs of a minute and more (examples-net on one core): after every epoch.
    assert saves(default, 70.0, 5, clock) == [1, 2, 3, 4, 5]
    # 25 s epochs: whenever the next epoch would leave more than 60 s unsaved.
    assert saves(default, 25.0, 8, clock) == [2, 4, 6, 8]
    # Short epochs: about once a minute.
    assert saves(default, 1.0, 200, clock) == [60, 120, 180]
    # A run shorter than a minute never writes a checkpoint.
    assert saves(default, 5.0, 11, clock) == []


def test_every_n_epochs_and_never(clock):
    assert saves(checkpoint_plan("unused", 2), 1000.0, 5, clock) == [2, 4]
    assert saves(checkpoint_plan("unused", 0), 1000.0, 5, clock) == []


def test_the_command_line_default_is_the_time_policy():
    parser = build_parser("run")
    assert parser.parse_args([]).checkpoint_every is None
    assert parser.parse_args(["--checkpoint-every", "0"]).checkpoint_every == 0
    assert "a minute of training" in parser.format_help()


def test_a_run_interrupted_after_a_default_checkpoint_resumes_bit_for_bit(tmp_path, monkeypatch):
    """Every epoch "takes" 70 s, so the default policy saves after each; the resumed run ends
    exactly where an uninterrupted run ends."""
    data = prepare_data(load_dataset("digits", DataSearch(download=False)), 0.1, "cpu")
    cfg = RunConfig(arch="lenet-12", dataset="digits", seed=2, epochs=3)
    reference = train_run(cfg, data)
    ticks = iter(range(0, 10_000, 70))
    monkeypatch.setattr(bench.checkpoint, "monotonic", lambda: float(next(ticks)))
    path = tmp_path / CHECKPOINT_FILE
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, data, checkpoint=StopAfter(checkpoint_plan(str(path), None), cfg.run_id()))
    assert path.is_file()
    hook = Checkpointer(checkpoint_plan(str(path), None), cfg.run_id())
    assert_same_outcome(train_run(cfg, data, checkpoint=hook), reference)
    assert hook.resumed_from == StopAfter.stop

"""The cosine and one-cycle schedules: their per-epoch rates, a training fraction's epochs,
and a run resumed from a mid-run checkpoint ending bit for bit where an uninterrupted one does."""

from __future__ import annotations

import math

import pytest
import torch

from bench.checkpoint import CheckpointPlan, Checkpointer
from bench.config import RunConfig
from bench.datasets import DataSearch, load_dataset, prepare_data
from bench.storage import CHECKPOINT_FILE
from bench.train import cosine_factor, make_scheduler, train_run
from test_resume import StopAfter, assert_same_outcome


def _rates(cfg: RunConfig) -> list[float]:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    scheduler = make_scheduler(cfg, optimizer)
    rates = []
    for _ in range(cfg.epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_cosine_warms_up_linearly_then_decays_to_above_zero():
    assert [cosine_factor(e, 5, 1) for e in range(5)] == pytest.approx(
        [0.5, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4))], abs=1e-15)
    rates = _rates(RunConfig(arch="lenet", dataset="digits", epochs=4, lr=0.1, lr_schedule="cosine"))
    assert rates == pytest.approx([0.1, 0.1 * 0.5 * (1 + math.cos(math.pi / 4)), 0.05,
                                   0.1 * 0.5 * (1 + math.cos(3 * math.pi / 4))], abs=1e-15)


def test_onecycle_peaks_at_lr_and_its_last_epoch_still_trains():
    rates = _rates(RunConfig(arch="lenet", dataset="digits", epochs=5, lr=0.1, optimizer="sgd",
                             lr_schedule="onecycle"))
    assert 0.09 < max(rates) <= 0.1 and rates[0] == pytest.approx(0.1 / 25)  # torch: starts at max_lr / 25
    assert rates[-1] > 1e-4 and rates.index(max(rates)) < len(rates) - 1


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_scheduled_run_resumes_bit_for_bit(tmp_path, schedule):
    data = prepare_data(load_dataset("digits", DataSearch(download=False)), 0.1, "cpu")
    cfg = RunConfig(arch="lenet", dataset="digits", seed=3, epochs=4, optimizer="sgd", lr=0.05,
                    lr_schedule=schedule, warmup_epochs=1 if schedule == "cosine" else 0, train_fraction=0.5)
    reference = train_run(cfg, data)
    assert [e["lr"] for e in reference.epochs] == pytest.approx(_rates(cfg), abs=1e-15)
    plan = CheckpointPlan(str(tmp_path / CHECKPOINT_FILE), every=1)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, data, checkpoint=StopAfter(plan, cfg.run_id()))
    hook = Checkpointer(plan, cfg.run_id())
    resumed = train_run(cfg, data, checkpoint=hook)
    assert hook.resumed_from == 2
    assert_same_outcome(resumed, reference)


def test_a_training_fraction_trains_that_share_of_each_epoch():
    data = prepare_data(load_dataset("digits", DataSearch(download=False)), 0.1, "cpu")
    cfg = RunConfig(arch="lenet", dataset="digits", epochs=1, train_fraction=0.25)
    full, quarter = train_run(cfg.replace(train_fraction=1.0), data), train_run(cfg, data)
    images = len(data.train)
    assert quarter.epochs[0]["train_images_per_s"] * quarter.epochs[0]["train_seconds"] == \
        pytest.approx(round(images * 0.25))
    assert full.epochs[0]["train_images_per_s"] * full.epochs[0]["train_seconds"] == pytest.approx(images)

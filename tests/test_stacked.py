"""Stacked seeds (--stack-seeds): one wide network steps many runs, each as it would alone.

Exact where it can be: after a step, every stacked run's weights equal its solo run's up to
float rounding, for every network in the registry that stacks (the others say why not).
Statistical where it must be: over a short grid, stacked and solo accuracies paired by seed
cannot be told apart.  And end to end: recorded, verified, reported, timed.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from architectures import get_spec, list_models
from bench.cli import build_parser
from bench.config import RunConfig
from bench.datasets import DataSearch, load_dataset, prepare_data
from bench.datasets.tensors import Split
from bench.fast import speedups
from bench.drivers.stacked import DROPOUT, stack_models, stack_refusal, unstack_into
from bench.drivers.stacked_training import StackSteps, refusal, train_stack
from bench.planner import CPU_STACK_MAX_MFLOP
from bench.seeding import data_order_generator
from bench.storage import load_record
from bench.train import build_training, train_run
from conftest import run_cli

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def digits():
    return prepare_data(load_dataset("digits", DataSearch(download=False)), 0.1, "cpu")


def has_dropout(arch: str) -> bool:
    model = get_spec(arch).build(in_channels=1, num_classes=10, image_size=28)
    return any(isinstance(m, DROPOUT) and m.p > 0 for m in model.modules())


@pytest.mark.parametrize("arch", list_models())
def test_one_stacked_step_equals_each_run_alone(arch, digits):
    """One SGD step: each run's slice of the stack ends where its solo run ends."""
    reason = refusal(arch, digits.in_channels, len(digits.classes), digits.image_size)
    if has_dropout(arch):
        assert reason is not None and "dropout" in reason
        return
    assert reason is None
    cfgs = [RunConfig(arch=arch, dataset="digits", seed=s, optimizer="sgd", lr=0.05, momentum=0.9,
                      stacked=True) for s in SEEDS]
    orders = torch.stack([torch.randperm(len(digits.train), generator=data_order_generator(s))[:32]
                          for s in SEEDS])
    with speedups(cfgs[0]).threads():
        steps = StackSteps([c.replace(batch_size=32) for c in cfgs], digits)
        steps.scheduler = None
        steps.run(digits, orders)
        alone = []
        for cfg, order in zip(cfgs, orders, strict=True):
            training = build_training(cfg.replace(batch_size=32, stacked=False), digits)
            training.run_steps(digits, order)
            alone.append(training.model)
    mine = [build_training(c.replace(stacked=False), digits).model for c in cfgs]
    unstack_into(steps.model, mine)
    for seed, got, want in zip(SEEDS, mine, alone, strict=True):
        for (name, a), b in zip(got.state_dict().items(), want.state_dict().values(), strict=True):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), f"seed {seed}: {name} differs by {(a - b).abs().max()}"


def test_a_stack_keeps_each_runs_own_optimizer_state_and_statistics(digits):
    """Adam's moments and BatchNorm's running statistics: per run, however many runs stack."""
    cfgs = [RunConfig(arch="bn-convnet", dataset="digits", seed=s, epochs=1, stacked=True) for s in SEEDS]
    with speedups(cfgs[0]).threads():
        stacked = train_stack(cfgs, digits)
        alone = [train_run(c.replace(stacked=False), digits) for c in cfgs]
    for got, want in zip(stacked, alone, strict=True):
        assert (got.step_mode, got.seed_group, got.stacked_with) == ("stacked", 3, "0,1,2")
        assert got.test.accuracy == pytest.approx(want.test.accuracy, abs=0.03)
        assert got.epochs[0]["train_loss"] == pytest.approx(want.epochs[0]["train_loss"], rel=1e-3)
        assert got.epochs[0]["val_loss"] == pytest.approx(want.epochs[0]["val_loss"], rel=0.05)
    # the runs really differ from one another: no slice was shared
    assert len({round(o.test.loss, 9) for o in stacked}) == len(SEEDS)


def test_stacked_and_solo_accuracies_cannot_be_told_apart(digits):
    """Eight seeds of a short grid, paired by seed: a paired t-test finds no difference."""
    cfgs = [RunConfig(arch="lenet", dataset="digits", seed=s, epochs=3, stacked=True) for s in range(8)]
    with speedups(cfgs[0]).threads():
        stacked = train_stack(cfgs, digits)
        alone = [train_run(c.replace(stacked=False), digits) for c in cfgs]
    assert any(a.test.loss != b.test.loss for a, b in zip(stacked, alone, strict=True)), \
        "stacking changed no rounding: is it stacking at all?"
    accuracy = np.array([[a.test.accuracy, b.test.accuracy] for a, b in zip(stacked, alone, strict=True)])
    differences = accuracy[:, 0] - accuracy[:, 1]
    if differences.any():  # all equal: nothing to test, and nothing to tell apart
        assert stats.ttest_rel(accuracy[:, 0], accuracy[:, 1]).pvalue > 0.05
    assert abs(differences.mean()) < 0.01


def test_the_stacked_network_refuses_what_it_cannot_widen():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 2, 3)
            self.norm = torch.nn.GroupNorm(1, 2)

        def forward(self, x):
            return self.norm(self.conv(x)).flatten(1)

    assert "GroupNorm" in stack_refusal(Odd())
    model = get_spec("lenet").build(in_channels=1, num_classes=10, image_size=28)
    assert stack_refusal(model) is None
    x = torch.rand(2, 4, 1, 28, 28)
    with torch.no_grad():
        wide = stack_models([model, model]).eval()(x.transpose(0, 1).reshape(4, 2, 28, 28))
        assert torch.allclose(wide[1], model.eval()(x[1]), atol=1e-5)


def test_a_stacked_grid_records_verifies_and_reports(tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli("--archs", "lenet-12,examples-net,dilated", "--dataset", "digits", "--seeds", "3", "--epochs", "2",
                   "--workers", "1", "--stack-seeds", "2", "--checkpoint-every", "1", "--out", str(out)) == 0
    said = capsys.readouterr().out
    assert "examples-net trains alone, not stacked: dropout" in said
    assert "dilated trains alone, not stacked: on CPU its 3.6 training MFLOP per image" in said
    assert "lenet-12 trains alone" not in said
    runs = pd.read_csv(out / "runs.csv").set_index(["arch", "seed"])
    lenet = runs.loc["lenet-12"]
    assert lenet["stacked"].all() and (lenet["step_mode"] == "stacked").all()
    assert list(lenet["stacked_with"]) == ["0,1", "0,1", "2"] and list(lenet["seed_group"]) == [2, 2, 1]
    assert not runs.loc["examples-net"]["stacked"].any() and not runs.loc["dilated"]["stacked"].any()
    assert (runs.loc["examples-net"]["step_mode"] == "eager").all()
    stacked_id = runs.loc[("lenet-12", 0), "run_id"]
    assert load_record(out, stacked_id).config.replace(stacked=False).run_id() != stacked_id
    assert "--stack-seeds 2" in json.loads((out / "config.json").read_text())["reproduce"]
    assert not list(out.glob("runs/*/checkpoint.pt")), "no checkpoint is left once the runs are stored"
    assert "pair runs that stepped differently" in (out / "report.html").read_text()

    assert run_cli("verify", str(out), "--arch", "lenet-12", "--seed", "1") == 0
    said = capsys.readouterr().out
    assert "retraining that stack" in said and "bit for bit" in said


def test_the_cpu_rule_is_said_in_the_help():
    said_in_help = next(a.help for a in build_parser("run")._actions if a.dest == "stack_seeds")
    assert f"above {CPU_STACK_MAX_MFLOP:g} training MFLOP per image" in said_in_help


def test_stacking_needs_the_local_executor(capsys):
    assert run_cli("--archs", "lenet", "--dataset", "digits", "--executor", "ray", "--stack-seeds", "2") == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --stack-seeds only used with --executor local"


def test_perf_times_a_stack_against_one_run_and_runs_alone(tmp_path, capsys):
    csv = tmp_path / "perf.csv"
    assert run_cli("perf", "--dataset", "digits", "--archs", "lenet-12,dilated", "--steps", "3", "--warmup", "1",
                   "--repeats", "1", "--threads", "1", "--stack-seeds", "3", "--csv", str(csv)) == 0
    table = pd.read_csv(csv).set_index("arch")
    for arch in ("lenet-12", "dilated"):  # dilated too: timed stacked, so the CPU rule can be re-checked
        row = table.loc[arch]
        assert row["workers"] == 3 and row["machine_images"] == 3 * 3 * 64 and row["machine_step_mode"] == "stacked"
        assert row["runs_cost_vs_one"] == pytest.approx(3 * row["cnnbench_images_per_s"] / row["machine_images_per_s"])
        assert row["runs_cost_vs_alone"] == pytest.approx(row["runs_cost_vs_one"] / 3)
    said = capsys.readouterr().out
    rule = "dilated: stacked here to re-check the rule by which a CPU grid trains its seeds alone: on CPU its 3.6"
    assert rule in said
    assert "lenet-12: stacked here" not in said


@pytest.mark.slow
def test_on_real_mnist_stacked_and_solo_accuracies_cannot_be_told_apart(mnist_dir):
    """Eight seeds, one epoch on 6,000 MNIST training images, 10,000 test images: paired by
    seed, the stacked runs' test accuracies and the solo runs' cannot be told apart (paired
    t-test, scipy.stats.ttest_rel).  They may also be equal: the stack sums in other orders
    (grouped kernels, its LeNet layers' own kernels), which need not move a prediction."""
    full = load_dataset("mnist", DataSearch(data_dir=mnist_dir, download=False))
    subset = dataclasses.replace(full, train=Split(full.train.images[:6000], full.train.labels[:6000]))
    data = prepare_data(subset, 0.1, "cpu")
    cfgs = [RunConfig(arch="lenet-12", dataset="mnist", seed=s, epochs=1, stacked=True) for s in range(8)]
    with speedups(cfgs[0]).threads():
        stacked = [o.test.accuracy for o in train_stack(cfgs, data)]
        alone = [train_run(c.replace(stacked=False), data).test.accuracy for c in cfgs]
    differences = np.subtract(stacked, alone)
    if differences.any():  # all equal: nothing to tell apart
        assert stats.ttest_rel(stacked, alone).pvalue > 0.05
    assert np.abs(differences).max() < 0.01

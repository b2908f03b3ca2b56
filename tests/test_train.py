import math

import pytest
import torch
from torch import nn

from architectures import list_models, register_model, unregister_model
from bench.config import RunConfig
from bench.datasets import load_dataset
from bench.flops import arch_cost
from bench.datasets import prepare_data
from bench.train import train_run


@pytest.fixture(scope="module")
def digits():
    return prepare_data(load_dataset("digits", None), 0.1, "cpu")


def metrics(outcome):
    return [(e["train_loss"], e["train_acc"], e["val_loss"], e["val_acc"]) for e in outcome.epochs], \
        (outcome.test.loss, outcome.test.accuracy, outcome.test.confusion.tolist())


def test_same_config_twice_gives_identical_metrics(digits):
    cfg = RunConfig(arch="lenet", dataset="digits", epochs=2, seed=3)
    first, second = train_run(cfg, digits), train_run(cfg, digits)
    assert metrics(first) == metrics(second)
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)


def test_different_seeds_differ(digits):
    cfg = RunConfig(arch="lenet", dataset="digits", epochs=1)
    assert metrics(train_run(cfg, digits)) != metrics(train_run(cfg.replace(seed=1), digits))


@pytest.fixture
def label_recorders():
    """Two throw-away architectures that record the label order they are trained on."""
    seen: dict[str, list[torch.Tensor]] = {"probe-a": [], "probe-b": []}

    class Probe(nn.Module):
        def __init__(self, name, width, num_classes):
            super().__init__()
            self.name = name
            self.fc = nn.Linear(28 * 28, num_classes)
            self.extra = nn.Linear(width, width)  # different init RNG use per arch

        def forward(self, x):
            if self.training:
                seen[self.name].append(x[:, 0, 14, :].clone())
            return self.fc(x.flatten(1))

    for name, width in (("probe-a", 3), ("probe-b", 50)):
        def builder(in_channels=1, num_classes=10, image_size=28, _n=name, _w=width):
            return Probe(_n, _w, num_classes)
        register_model(name, family="test", description="records its inputs")(builder)
    yield seen
    for name in seen:
        unregister_model(name)


def test_same_seed_gives_every_architecture_the_same_batches(digits, label_recorders):
    for arch in ("probe-a", "probe-b"):
        arch_cost(arch)  # its FLOP-counting forward pass is not training data
        label_recorders[arch].clear()
    for arch in ("probe-a", "probe-b"):
        train_run(RunConfig(arch=arch, dataset="digits", epochs=2, seed=5), digits)
    a, b = label_recorders["probe-a"], label_recorders["probe-b"]
    assert len(a) == len(b) == 2 * math.ceil(len(digits.train) / 64)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_best_val_weights_are_the_ones_tested(digits):
    cfg = RunConfig(arch="lenet", dataset="digits", epochs=3, seed=0)
    outcome = train_run(cfg, digits)
    best = max(range(3), key=lambda i: (outcome.epochs[i]["val_acc"], -outcome.epochs[i]["val_loss"]))
    assert outcome.tested_weights == "best-val" and outcome.best_epoch == best + 1
    last = train_run(cfg.replace(test_weights="last"), digits)
    assert last.tested_weights == "last" and last.best_epoch == 3


def test_learns_and_records_every_epoch_field(digits):
    outcome = train_run(RunConfig(arch="lenet", dataset="digits", epochs=2), digits)
    assert outcome.status == "ok" and len(outcome.epochs) == 2
    assert outcome.test.accuracy > 0.5  # chance is 0.1
    assert outcome.test.confusion.sum() == len(digits.test)
    for record in outcome.epochs:
        assert record["train_seconds"] > 0 and record["train_images_per_s"] > 0
        assert record["lr"] == 1e-3


def test_step_schedule_decays_the_learning_rate(digits):
    cfg = RunConfig(arch="lenet", dataset="digits", epochs=3, optimizer="sgd", lr=0.1,
                    lr_schedule="step", lr_step=1, lr_gamma=0.5)
    assert [e["lr"] for e in train_run(cfg, digits).epochs] == pytest.approx([0.1, 0.05, 0.025])


def test_misclassified_are_wrong_and_sorted_by_confidence(digits):
    outcome = train_run(RunConfig(arch="lenet", dataset="digits", epochs=1), digits)
    mis = outcome.misclassified
    assert (mis["true"] != mis["predicted"]).all()
    assert torch.all(mis["confidence"][:-1] >= mis["confidence"][1:])
    assert torch.equal(mis["images"], digits.test.images[mis["index"]])


@pytest.mark.parametrize("arch", list_models())
def test_eval_batch_size_changes_no_prediction_only_rounding(digits, arch, monkeypatch):
    """Evaluation batches are sized for speed (bench.fast.policy).  A kernel may block a
    batch of another size differently, so logits can move in the last bits, but no further:
    the same predictions, probabilities and loss equal to float32 rounding."""
    import bench.fast.policy as policy
    from bench.train import build_training, evaluate

    cfg = RunConfig(arch=arch, dataset="digits")
    training = build_training(cfg, digits)
    training.run_steps(digits, torch.arange(128))  # trained a little: BatchNorm's running stats move
    batches: list[int] = []
    training.model.register_forward_pre_hook(lambda _module, args: batches.append(len(args[0])))
    results = {}
    for size in (1000, 37):  # 1,293 images: 1000 + 293, and 34 x 37 + 35
        monkeypatch.setattr(policy, "CPU_EVAL_BATCH", size)
        batches.clear()
        results[size] = evaluate(training, digits, digits.train, keep_probabilities=True)
        assert max(batches) == size and sum(batches) == len(digits.train)  # the size was really used
    one, many = results[1000], results[37]
    torch.testing.assert_close(many.probabilities, one.probabilities, rtol=1e-5, atol=1e-7)
    assert (one.confusion == many.confusion).all() and one.accuracy == many.accuracy
    assert one.loss == pytest.approx(many.loss, rel=1e-6)

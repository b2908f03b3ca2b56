import dataclasses
import hashlib
import json

import pytest

from bench.config import RunConfig
from bench.errors import BenchError


def test_frozen():
    cfg = RunConfig(arch="lenet", dataset="digits")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 5


def test_hash_is_stable_and_covers_every_field():
    cfg = RunConfig(arch="lenet", dataset="digits")
    assert cfg.config_hash() == RunConfig(arch="lenet", dataset="digits").config_hash()
    changes = {"arch": "dilated", "dataset": "mnist", "seed": 1, "epochs": 4, "batch_size": 32,
               "optimizer": "sgd", "optimizer_impl": "foreach", "lr": 0.1, "momentum": 0.5, "weight_decay": 1e-4,
               "lr_schedule": "step", "lr_step": 2, "lr_gamma": 0.5, "val_fraction": 0.2,
               "test_weights": "last", "device": "cuda", "dtype": "bfloat16-autocast", "tf32": True,
               "memory_format": "channels_last", "compile": True, "deterministic": True, "stacked": True,
               "warmup_epochs": 1, "train_fraction": 0.5, "aten_stack": True}
    assert set(changes) == {f.name for f in dataclasses.fields(RunConfig)}, "a new field needs a case here"
    hashes = {cfg.replace(**{k: v}).config_hash() for k, v in changes.items()}
    assert len(hashes) == len(changes) and cfg.config_hash() not in hashes


def test_a_field_added_later_keeps_old_ids_at_its_default():
    """Runs stored before ``stacked`` existed keep their ids: the hash of this config is the
    one the config without the field had."""
    cfg = RunConfig(arch="lenet", dataset="digits")
    later = ("stacked", "aten_stack", "warmup_epochs", "train_fraction")
    assert cfg.config_hash() == hashlib.sha256(json.dumps(
        {k: v for k, v in cfg.to_dict().items() if k not in later}, sort_keys=True, separators=(",", ":")
    ).encode()).hexdigest()
    assert cfg.replace(stacked=True).run_id() != cfg.run_id()
    assert cfg.config_hash() == "1badf6012d179b411403ce9a24f8801bb744cb1ff39765dd78338ace14037b91"  # before issue 32


def test_run_id_names_the_run_and_includes_the_arch_source():
    cfg = RunConfig(arch="lenet", dataset="digits", seed=2)
    assert cfg.run_id().startswith("lenet-digits-s2-")
    assert cfg.run_id() != cfg.replace(epochs=4).run_id()


def test_run_id_changes_when_the_architecture_source_changes(monkeypatch):
    from architectures.registry import ArchSpec

    cfg = RunConfig(arch="lenet", dataset="digits")
    before = cfg.run_id()
    monkeypatch.setattr(ArchSpec, "digest", property(lambda self: "edited-source"))
    assert cfg.run_id() != before


def test_round_trip_through_dict():
    cfg = RunConfig(arch="lenet", dataset="digits", lr=0.0003, seed=4)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("field,value,message", [
    ("epochs", 0, "--epochs must be a positive integer"),
    ("batch_size", -1, "--batch-size must be a positive integer"),
    ("lr", 0.0, "--lr must be positive"),
    ("seed", -1, "seeds must be non-negative"),
    ("val_fraction", 1.0, r"--val-fraction must be in \[0, 1\)"),
    ("val_fraction", -0.1, r"--val-fraction must be in \[0, 1\)"),
    ("optimizer", "rmsprop", "unknown optimizer 'rmsprop'; choose from sgd, adam, adadelta"),
    ("device", "auto", "resolved device"),
    ("warmup_epochs", 3, "--warmup-epochs 3 leaves no epoch of the 3 to decay in"),
    ("warmup_epochs", -1, "--warmup-epochs must be >= 0"),
    ("train_fraction", 0.0, r"the training fraction must be in \(0, 1\]"),
    ("lr_schedule", "linear", "unknown lr schedule 'linear'; choose from none, step, cosine, onecycle"),
])
def test_invalid_values_are_rejected_with_the_option_named(field, value, message):
    with pytest.raises(BenchError, match=message):
        RunConfig(arch="lenet", dataset="digits", **{field: value})


def test_best_val_needs_a_validation_set():
    with pytest.raises(BenchError, match="best-val needs --val-fraction > 0"):
        RunConfig(arch="lenet", dataset="digits", val_fraction=0.0)
    assert RunConfig(arch="lenet", dataset="digits", val_fraction=0.0, test_weights="last")

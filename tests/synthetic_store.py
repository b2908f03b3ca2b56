"""Build a stored output directory from synthetic numbers (no training), for report tests
and the report benchmark.  Architectures are throw-away registrations of real builders, so
feature maps and weights are real; accuracies follow a known formula.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from architectures import get_spec, register_model, unregister_model
from bench.config import RunConfig
from bench.records import pack_bits
from bench.schema import RECORD_VERSION
from bench.storage import atomic_torch_save, atomic_write_json

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot"]


@contextmanager
def registered(specs: dict[str, dict[str, str]], builder: str = "lenet") -> Iterator[list[str]]:
    """Register ``name -> factors`` as throw-away architectures built like ``builder``."""
    base = get_spec(builder).builder
    try:
        for name, factors in specs.items():
            register_model(name, family="ablation" if factors else "synthetic",
                           description=f"synthetic copy of {builder}", factors=factors)(base)
        yield list(specs)
    finally:
        for name in specs:
            unregister_model(name)


def write_store(out: Path, accuracy: dict[tuple[str, int], float], seeds: list[int], epochs: int,
                factors: dict[str, dict[str, str]], dataset: str = "fashion-mnist",
                failed: tuple[tuple[str, int], ...] = (), weights: bool = True,
                epoch_seconds: dict[tuple[str, int], float] | None = None,
                test_correct: dict[tuple[str, int], np.ndarray] | None = None,
                diverged: tuple[tuple[str, int], ...] = ()) -> Path:
    """Write config.json, the three tables, samples, weights and misclassified for a fake grid.

    ``epoch_seconds`` sets runs' epoch times (default: about half a second), ``test_correct`` the
    test images each run got right (stored in its record, as real records hold them), and
    ``failed`` / ``diverged`` the runs stored with those statuses."""
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    archs = list(dict.fromkeys(a for a, _ in accuracy))
    rng = np.random.default_rng(0)
    runs, epoch_rows, confusion_rows = [], [], []
    k = len(CLASSES)
    for a_i, arch in enumerate(archs):
        for seed in seeds:
            run_id = f"{arch}-{dataset}-s{seed}-synthetic"
            acc = accuracy[(arch, seed)]
            status = "failed" if (arch, seed) in failed else "diverged" if (arch, seed) in diverged else "ok"
            epoch_s = (epoch_seconds or {}).get((arch, seed), 0.5 + 0.1 * a_i + 0.01 * seed)
            row = {"run_id": run_id, "arch": arch, "dataset": dataset, "seed": seed, "epochs": epochs,
                   "status": status,
                   "error": {"failed": "out of memory",
                             "diverged": "loss became non-finite in epoch 2"}.get(status, ""),
                   "family": "ablation" if factors.get(arch) else "synthetic",
                   "params": 44330 + a_i, "flops_per_image": 1.5e6 + 1e4 * a_i}
            for f, level in factors.get(arch, {}).items():
                row[f"factor_{f}"] = level
            if status == "ok":
                row.update({"test_acc": acc, "best_val_acc": acc + 0.01, "test_loss": 1 - acc,
                            "best_epoch": epochs - 1, "epochs_run": epochs,
                            "mean_epoch_seconds": epoch_s, "train_seconds": epoch_s * epochs,
                            "train_images_per_s": 60000 / epoch_s})
                for e in range(1, epochs + 1):
                    frac = e / epochs
                    epoch_rows.append({"run_id": run_id, "arch": arch, "dataset": dataset, "seed": seed,
                                       "epoch": e, "train_loss": 2 - frac, "train_acc": acc * frac,
                                       "val_loss": 2.1 - frac, "val_acc": acc * frac - 0.01,
                                       "lr": 0.001, "train_seconds": epoch_s * (1.5 if e == 1 else 1),
                                       "eval_seconds": 0.01, "train_images_per_s": 60000 / epoch_s})
                n = 100
                correct = int(round(acc * n))
                for t in range(k):
                    counts = np.zeros(k, dtype=int)
                    counts[t] = correct
                    counts[(t + 1 + a_i) % k if (t + 1 + a_i) % k != t else (t + 2) % k] += n - correct
                    for p in range(k):
                        confusion_rows.append({"run_id": run_id, "arch": arch, "dataset": dataset,
                                               "seed": seed, "true": t, "predicted": p, "count": int(counts[p])})
                if weights:
                    torch.manual_seed(seed)
                    model = get_spec(arch).build(in_channels=1, num_classes=k, image_size=28)
                    atomic_torch_save(out / "runs" / run_id / "weights.pt", model.state_dict())
                    atomic_torch_save(out / "runs" / run_id / "misclassified.pt", {
                        "index": torch.arange(4) + seed, "images": torch.from_numpy(
                            rng.integers(0, 255, size=(4, 1, 28, 28), dtype=np.uint8)),
                        "true": torch.tensor([0, 1, 2, 3]), "predicted": torch.tensor([1, 2, 3, 4]),
                        "confidence": torch.tensor([0.99, 0.9, 0.8, 0.7])})
            # The run's record, as the runner stores it (the report leaves out runs without one).
            bits = (test_correct or {}).get((arch, seed)) if status == "ok" else None
            atomic_write_json(out / "runs" / run_id / "record.json", {
                "version": RECORD_VERSION, "run_id": run_id, "status": status, "error": row["error"],
                "config": RunConfig(arch=arch, dataset=dataset, seed=seed, epochs=epochs).to_dict(),
                "test_correct": pack_bits(bits) if bits is not None else None})
            runs.append(row)
    pd.DataFrame(runs).to_csv(out / "runs.csv", index=False)
    pd.DataFrame(epoch_rows).to_csv(out / "epochs.csv", index=False)
    pd.DataFrame(confusion_rows).to_csv(out / "confusion.csv", index=False)
    images = torch.from_numpy(rng.integers(0, 255, size=(2 * k, 1, 28, 28), dtype=np.uint8))
    torch.save({"train_images": images, "train_labels": torch.arange(k).repeat_interleave(2),
                "probe_image": images[0], "probe_label": 0, "classes": CLASSES, "mean": 0.28, "std": 0.35},
               out / f"samples-{dataset}.pt")
    (out / "config.json").write_text(json.dumps({
        "reproduce": f"python -m bench --archs {','.join(archs)} --dataset {dataset} --out {out}",
        "started_at": "2026-01-01T00:00:00+00:00", "wall_seconds": 123.4,
        "grid": {"archs": archs, "datasets": [dataset], "seeds": seeds},
        "base_config": {"epochs": epochs, "batch_size": 64, "optimizer": "adam", "lr": 0.001, "device": "cpu"},
        "datasets": {dataset: {"classes": CLASSES, "fallback_reason": None, "source": "synthetic"}},
        "run_ids": [f"{a}-{dataset}-s{s}-synthetic" for a in archs for s in seeds],
        "environment": {"torch_version": torch.__version__, "device_name": "test CPU"},
        "git_commit": "0123456789ab",
    }))
    return out


def factorial_specs(convs=("standard", "dilated"), downs=("max", "avg"), prefix="synth") -> dict[str, dict[str, str]]:
    return {f"{prefix}-{c}-{d}": {"conv": c, "downsample": d} for c, d in itertools.product(convs, downs)}

"""What the networks see and get wrong, from the stored weights and misclassified images.

Models are rebuilt through the registry (``architectures.build_model``) and loaded with
the saved ``state_dict``; nothing is retrained.  Anything missing (weights not stored, an
architecture no longer registered) becomes a note in the report, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from architectures import UnknownArchitectureError, build_model

from ..errors import BenchError
from ..storage import load_misclassified, load_weights, read_invocation
from ..user_networks import use_recorded


@dataclass
class FeatureMaps:
    probe: np.ndarray | None = None  # (C, H, W) uint8, C = 1 or 3
    probe_label: int | None = None
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # arch -> (C, H', W')
    seeds: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def first_conv_maps(model: nn.Module, image: torch.Tensor) -> np.ndarray:
    """Output of the first ``nn.Conv2d`` (before its activation) for one normalized image."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError("has no nn.Conv2d layer")
    captured: list[torch.Tensor] = []
    handle = conv.register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    try:
        with torch.no_grad():
            model.eval()(image)
    finally:
        handle.remove()
    return captured[0][0].float().numpy()


def feature_maps(ok_runs: pd.DataFrame, archs: list[str], sample: dict | None, out) -> FeatureMaps:
    result = FeatureMaps()
    if not sample or "probe_image" not in sample:
        result.notes.append("no stored probe image (samples file missing), so no feature maps")
        return result
    probe = sample["probe_image"]
    result.probe = probe.numpy()
    result.probe_label = int(sample.get("probe_label", -1))
    image = normalized(probe, sample.get("mean", 0.0), sample.get("std", 1.0)).unsqueeze(0)  # as training saw it
    num_classes = len(sample.get("classes", [])) or 10
    try:
        use_recorded(read_invocation(out))  # the grid's networks from outside the zoo
    except BenchError as exc:
        result.notes.append(f"the grid's own networks could not be loaded again: {exc}")
    for arch in archs:
        runs = ok_runs[ok_runs["arch"] == arch].sort_values("seed")
        if runs.empty:
            continue
        run = runs.iloc[0]  # the lowest seed: a fixed, documented choice
        try:
            model = build_model(arch, in_channels=int(probe.shape[0]), num_classes=num_classes,
                                image_size=int(probe.shape[-1]))
            model.load_state_dict(load_weights(out, run["run_id"]))
            result.maps[arch] = first_conv_maps(model, image)
            result.seeds[arch] = int(run["seed"])
        except UnknownArchitectureError:
            result.notes.append(f"{arch}: no longer registered, so its feature maps cannot be rebuilt")
        except (BenchError, RuntimeError, ValueError) as exc:
            result.notes.append(f"{arch}: feature maps unavailable ({str(exc).splitlines()[0]})")
    return result


def normalized(image: torch.Tensor, mean, std) -> torch.Tensor:
    """A stored uint8 (C, H, W) image normalized with its dataset's statistics (one number,
    or one per channel)."""
    x = image.to(torch.float32).div(255.0)
    if isinstance(mean, (list, tuple)):
        return x.sub(torch.tensor(mean).view(-1, 1, 1)).div(torch.tensor(std).view(-1, 1, 1))
    return x.sub(float(mean)).div(float(std))


@dataclass
class Mistakes:
    images: np.ndarray
    captions: list[str]
    count: int


def worst_mistakes(ok_runs: pd.DataFrame, arch: str, classes: list[str], out, top: int = 8) -> Mistakes | None:
    """The most confidently misclassified test images over all seeds of ``arch``."""
    rows = []
    for run in ok_runs[ok_runs["arch"] == arch].sort_values("seed").itertuples():
        try:
            data = load_misclassified(out, run.run_id)
        except Exception:  # a damaged file costs this grid, not the report
            data = None
        if not data or len(data.get("index", [])) == 0:
            continue
        for i in range(len(data["index"])):
            rows.append((float(data["confidence"][i]), int(data["index"][i]), int(run.seed),
                         int(data["true"][i]), int(data["predicted"][i]), data["images"][i].numpy()))
    if not rows:
        return None
    # Highest confidence first; ties broken by test index and seed so the grid is stable.
    rows.sort(key=lambda r: (-r[0], r[1], r[2]))
    seen, chosen = set(), []
    for row in rows:
        if row[1] not in seen:  # one image once, even if several seeds got it wrong
            seen.add(row[1])
            chosen.append(row)
        if len(chosen) == top:
            break

    def name(i: int) -> str:
        return classes[i] if 0 <= i < len(classes) else str(i)

    captions = [f"true {name(t)}\npred {name(p)} ({c:.0%})\n#{idx}, seed {s}" for c, idx, s, t, p, _ in chosen]
    return Mistakes(np.stack([r[5] for r in chosen]), captions, len(rows))

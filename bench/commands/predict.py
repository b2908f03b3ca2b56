"""``python -m bench predict``: classify image files with a finished run's weights."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BenchError

if TYPE_CHECKING:
    import torch
    from rich.console import Console

NAME = "predict"
DESCRIPTION = "Predict the class of image files (PNG/JPEG) with the weights a run was tested with."
TOP_K = 3
# Mean brightness above which an image counts as dark-on-light (a photo of ink on paper)
# and is inverted to MNIST's light-on-dark.
LIGHT_BACKGROUND = 127


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="an output directory of `python -m bench`")
    p.add_argument("--arch", required=True, help="architecture whose weights to use")
    p.add_argument("--seed", type=int, default=None, help="which seed's run (default: the lowest)")
    p.add_argument("--dataset", default=None, help="which dataset's run, when the grid had several")
    p.add_argument("images", nargs="+", help="image files")


def preprocess(path: Path, size: int, mean, std, channels: int = 1) -> torch.Tensor:
    """Resize and normalize as in training: (1,C,H,W).  Grayscale (MNIST-like sets) also
    inverts light backgrounds; colour keeps the photo as it is, normalized per channel."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            picture = img.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR)
    except FileNotFoundError:
        raise BenchError(f"image {path} not found") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise BenchError(f"cannot read image {path}: {exc}") from None
    pixels = np.asarray(picture, dtype=np.float32)
    if channels == 1:
        if pixels.mean() > LIGHT_BACKGROUND:
            pixels = 255.0 - pixels
        x = torch.from_numpy(pixels / 255.0)
        return ((x - mean) / std).reshape(1, 1, size, size)
    x = torch.from_numpy(pixels / 255.0).permute(2, 0, 1).unsqueeze(0)
    shape = (1, channels, 1, 1)
    return (x - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)


def main(args: argparse.Namespace, console: Console) -> int:
    import torch

    from architectures import build_model

    from ..storage import load_weights, read_invocation, read_tables
    from ..user_networks import use_recorded

    out = Path(args.run_dir)
    runs = read_tables(out)["runs.csv"]
    invocation = read_invocation(out)
    use_recorded(invocation)  # the grid's networks from outside the zoo
    chosen = runs[(runs["arch"] == args.arch) & (runs["status"] == "ok")]
    if args.dataset is not None:
        chosen = chosen[chosen["dataset"] == args.dataset]
    if args.seed is not None:
        chosen = chosen[chosen["seed"] == args.seed]
    if chosen.empty:
        have = ", ".join(f"{a} seed {s}" for a, s in runs[["arch", "seed"]].itertuples(index=False))
        raise BenchError(f"no finished run of {args.arch}"
                         f"{'' if args.seed is None else f' seed {args.seed}'} in {out}; it has: {have}")
    row = chosen.sort_values("seed").iloc[0]
    # A hand-edited runs.csv can lose columns or change cells: say so in one line.
    missing = [c for c in ("test_acc", "tested_weights") if c not in row.index]
    if missing:
        raise BenchError(f"{out / 'runs.csv'} has no column {', '.join(missing)}; was it edited by hand?")
    info = invocation.get("datasets", {}).get(row["dataset"])
    if info is None:
        raise BenchError(f"{out / 'runs.csv'} names dataset {row['dataset']!r}, which config.json "
                         "does not describe; was it edited by hand?")
    classes, size, channels = info["classes"], int(info["image_size"]), int(info.get("in_channels", 1))
    model = build_model(args.arch, in_channels=channels, num_classes=len(classes), image_size=size)
    model.load_state_dict(load_weights(out, row["run_id"]))
    model.eval()
    console.print(f"{args.arch} seed {row['seed']} on {row['dataset']} "
                  f"(test acc {_number(row['test_acc']):.4f}, {row['tested_weights']} weights)")
    with torch.inference_mode():
        for name in args.images:
            x = preprocess(Path(name), size, info["pixel_mean"], info["pixel_std"], channels)
            probs = model(x).softmax(1)[0]
            top = probs.topk(min(TOP_K, len(classes)))
            ranked = ", ".join(f"{classes[i]} {p:.1%}" for p, i in zip(top.values.tolist(), top.indices.tolist()))
            console.print(f"{name}: {classes[int(top.indices[0])]}  ({ranked})", soft_wrap=True)
    return 0


def _number(cell) -> float:
    """A table cell as a float (NaN when a hand edit made it text)."""
    try:
        return float(cell)
    except (TypeError, ValueError):
        return float("nan")

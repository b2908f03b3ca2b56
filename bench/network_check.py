"""Before any training: build each selected network and give it one dry batch.

A builder that raises, returns something other than an ``nn.Module``, has nothing to train
or gives logits of the wrong shape would otherwise fail every one of its runs, minutes in
and once per seed; here it ends the command with one line naming the file, the network and
what was wrong, before anything is written.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable

from .errors import BenchError, one_line

DRY_BATCH = 2  # two images: BatchNorm in training mode needs more than one value per channel


def check_networks(archs: Iterable[str], shapes: Iterable[tuple[int, int, int]]) -> None:
    """Raise ``BenchError`` for the first network that cannot train on an input shape.

    ``shapes`` are (channels, image size, classes) of the datasets the networks will see.
    """
    import torch

    from architectures import get_spec

    shapes = sorted(set(shapes))
    for arch in archs:
        spec = get_spec(arch)
        for channels, size, classes in shapes:
            with torch.random.fork_rng(devices=[]):  # building draws weights; the runs' seeds must not notice
                problem = _problem(spec, channels, size, classes)
            if problem:
                raise BenchError(f"{spec.source_file}: network {arch!r} {problem}")


def _problem(spec, channels: int, size: int, classes: int) -> str | None:
    import torch
    from torch import nn

    images = f"{channels}x{size}x{size}"
    try:
        model = spec.build(in_channels=channels, num_classes=classes, image_size=size)
    except Exception as exc:  # noqa: BLE001 - any failure of a builder is reported, not raised
        return f"could not be built for {images} images and {classes} classes: {_said(exc, spec.source_file)}"
    if not isinstance(model, nn.Module):
        return f"is built as a {type(model).__name__}, not an nn.Module"
    if not any(p.requires_grad and p.numel() for p in model.parameters()):
        return "has no parameters to train"
    x = torch.zeros(DRY_BATCH, channels, size, size)
    try:
        logits = model.train()(x)
        if isinstance(logits, torch.Tensor) and logits.requires_grad:
            logits.float().logsumexp(-1).sum().backward()
    except Exception as exc:  # noqa: BLE001
        return f"fails on a dry batch of {DRY_BATCH} {images} images: {_said(exc, spec.source_file)}"
    if not isinstance(logits, torch.Tensor):
        return f"returns a {type(logits).__name__} for a batch of images, not a tensor of logits"
    if tuple(logits.shape) != (DRY_BATCH, classes):
        return (f"returns shape {tuple(logits.shape)} for a batch of {DRY_BATCH} {images} images; "
                f"expected logits of shape ({DRY_BATCH}, {classes})")
    return None


def _said(exc: BaseException, source_file: str) -> str:
    """``Type: first line of the message (line N)``, N in the network's file when it is on the stack."""
    said = one_line(exc)
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == source_file]
    return f"{said} (line {lines[-1]})" if lines else said

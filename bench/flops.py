"""Measured model cost: parameters and training FLOPs per image."""

from __future__ import annotations

import copy
from functools import lru_cache

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def training_flops_per_image(model: nn.Module, in_channels: int, image_size: int, batch: int = 2) -> int:
    """Forward + backward FLOPs for one image, counted by torch's FlopCounterMode.

    Counted (not estimated by a formula) so a new architecture needs no hand-written
    cost model.  Runs on a CPU copy so the caller's model, device and RNG are untouched.
    """
    probe = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format)
    probe.train()
    x = torch.zeros(batch, in_channels, image_size, image_size)
    rng = torch.get_rng_state()
    try:
        with FlopCounterMode(display=False) as counter:
            probe(x).sum().backward()
    finally:
        torch.set_rng_state(rng)  # dropout in the probe must not shift the run's RNG
    return int(counter.get_total_flops() // batch)


def arch_cost(arch: str, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> tuple[int, int]:
    """(parameters, training FLOPs per image) of a registered architecture."""
    # One cache key however the caller spells the arguments.
    return _arch_cost(arch, in_channels, num_classes, image_size)


@lru_cache(maxsize=None)
def _arch_cost(arch: str, in_channels: int, num_classes: int, image_size: int) -> tuple[int, int]:
    from architectures import build_model

    rng = torch.get_rng_state()
    try:
        model = build_model(arch, in_channels=in_channels, num_classes=num_classes, image_size=image_size)
    finally:
        torch.set_rng_state(rng)
    return count_parameters(model), training_flops_per_image(model, in_channels, image_size)

"""Seeding: one place that makes a run's randomness a function of its seed."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices) for model init and dropout."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def data_order_generator(seed: int) -> torch.Generator:
    """The generator that shuffles training batches.

    Separate from the global RNG, so the data order depends on the seed alone and not on
    how many random numbers an architecture's initialisation consumed: every architecture
    trained with seed s sees the same batches in the same order (paired comparisons).
    """
    return torch.Generator(device="cpu").manual_seed(seed)

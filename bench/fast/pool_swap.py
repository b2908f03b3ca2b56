"""Swap a model's plain 2x2 / stride-2 pools for cnnbench's bit-identical ones.

Pools have no parameters, so a swap changes no state_dict key, and no stored run's id (which
hashes the architecture's source, not its modules at training time).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, tuple | list) else (v, v)


def is_plain_2x2(m: nn.Module, kind: type[nn.MaxPool2d] | type[nn.AvgPool2d]) -> bool:
    """``m`` is exactly a ``kind(2)``: 2x2 window, stride 2, no padding, floor mode, nothing else."""
    if type(m) is not kind or _pair(m.kernel_size) != (2, 2) or _pair(m.stride) != (2, 2):
        return False
    if _pair(m.padding) != (0, 0) or m.ceil_mode:
        return False
    if kind is nn.MaxPool2d:
        return _pair(m.dilation) == (1, 1) and not m.return_indices
    return m.divisor_override is None


def swap_plain_2x2(model: nn.Module, kind: type[nn.Module], make: Callable[[], nn.Module]) -> int:
    """Replace every plain 2x2 ``kind`` in ``model`` by ``make()``; returns how many."""
    plain = [(parent, name) for parent in model.modules()
             for name, child in parent.named_children() if is_plain_2x2(child, kind)]
    for parent, name in plain:
        setattr(parent, name, make())
    return len(plain)

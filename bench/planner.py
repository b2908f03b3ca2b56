"""Who trains together: decided once per grid, with the reason for every packing refused.

A grid's runs of one (architecture, dataset) differ only in their seed, and a worker may
train several of them at once: as a seed group (CUDA: one captured graph with a branch
per run, each run's own bits) or as a stack (``--stack-seeds``: one network N times as
wide, recorded in each run's config).  ``plan_grid`` looks at each (architecture, dataset)
once and decides how its runs are packed and why any packing asked for was refused;
``Plan.configs`` marks the stacked runs, ``Plan.units`` packs a grid's tasks into the work
units executors hand out.  Nothing else decides it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from architectures import get_spec

from .config import RunConfig
from .flops import arch_cost
from .tasks import RunTask, SeedGroupTask, WorkUnit
from .train import run_policy

ALONE, SEED_GROUP, STACK = "alone", "seed group", "stack"
# Runs of one configuration (seeds) a CUDA worker trains at once as a seed group: past 8, a
# group cost more than proportionally on the GPUs measured (docs/performance.md).
DEFAULT_SEEDS_TOGETHER = 8
CPU_STACK_PART = 4  # runs per stack on CPU: the cheapest per run of 1..8 for lenet-12 on one core
# On one CPU core a network above this many training MFLOP per image keeps the core busy
# alone: stacking it measured no cheaper per run, and slower where grouped convolutions are
# (every registered network, docs/performance.md).  Such runs train alone on CPU.
CPU_STACK_MAX_MFLOP = 3.0

Shape = tuple[int, int, int]  # a dataset's (in_channels, num_classes, image_size)


@dataclass(frozen=True)
class Packing:
    """How the runs of one (architecture, dataset) train: ``mode``, up to ``size`` runs a unit."""

    mode: str = ALONE
    size: int = 1
    refused: tuple[str, ...] = ()  # one line per packing asked for and refused, saying why
    aten: str = ""  # a stack: why it trains on aten's kernels, not bench.fast's (its runs' bits differ)


@dataclass(frozen=True)
class Plan:
    """Every (architecture, dataset)'s packing; one not in the plan trains alone."""

    packings: tuple[tuple[tuple[str, str], Packing], ...] = ()

    def packing(self, cfg: RunConfig) -> Packing:
        return dict(self.packings).get((cfg.arch, cfg.dataset), Packing())

    def configs(self, configs: Sequence[RunConfig]) -> list[RunConfig]:
        """``configs`` with the runs to stack marked so (stacking is part of what a run is), and
        a CPU stack that trains without bench.fast's kernels marked that too (other bits)."""
        return [c.replace(stacked=True, aten_stack=bool(self.packing(c).aten)) if self.packing(c).mode == STACK else c
                for c in configs]

    def notes(self) -> list[str]:
        """One line per refused packing (what trains alone, and why), and once why stacks use aten."""
        lines = [f"{arch} trains alone, {reason}" for (arch, _dataset), p in self.packings for reason in p.refused]
        aten = sorted({p.aten for _key, p in self.packings if p.aten})
        return lines + [f"stacks use aten's kernels, not bench.fast's: {reason}; their runs get other last bits "
                        "and ids of their own" for reason in aten]

    def units(self, tasks: Sequence[RunTask]) -> list[WorkUnit]:
        """The tasks in units of up to their packing's size, in grid order.

        A stack resumes only as the stack that saved its checkpoints, so stacked runs are
        packed whether or not they have one; the runs of a seed group must start at the same
        epoch, so a run with a checkpoint to resume from trains alone.
        """
        units: list[WorkUnit | list[RunTask]] = []
        open_units: dict[RunConfig, list[RunTask]] = {}
        for task in tasks:
            cfg = task.config
            packing = self.packing(cfg)
            together = packing.mode == STACK or (packing.mode == SEED_GROUP and not _has_checkpoint(task))
            most = packing.size if together and cfg.stacked == (packing.mode == STACK) else 1
            if most < 2:
                units.append(task)
                continue
            unit = open_units.get(cfg.replace(seed=0))
            if unit is None or len(unit) == most:
                unit = open_units[cfg.replace(seed=0)] = []
                units.append(unit)  # filled in place; turned into a task below
            unit.append(task)
        return [u if isinstance(u, RunTask) else u[0] if len(u) == 1 else SeedGroupTask(tuple(u)) for u in units]


def plan_grid(configs: Sequence[RunConfig], shapes: dict[str, Shape], *, stack_seeds: int = 1,
              seeds_together: int | None = None) -> Plan:
    """How each (architecture, dataset) of ``configs`` trains, given each dataset's shape and
    what was asked: stacks of up to ``stack_seeds``, or (CUDA) seed groups of up to
    ``seeds_together`` (default ``DEFAULT_SEEDS_TOGETHER``)."""
    packings: dict[tuple[str, str], Packing] = {}
    for cfg in configs:
        if (cfg.arch, cfg.dataset) not in packings:
            packings[(cfg.arch, cfg.dataset)] = _packing(cfg, shapes[cfg.dataset], stack_seeds, seeds_together)
    return Plan(tuple(packings.items()))


def _packing(cfg: RunConfig, shape: Shape, stack_seeds: int, seeds_together: int | None) -> Packing:
    if stack_seeds > 1:
        reason = stack_refusal(cfg, shape)
        if reason is not None:
            return Packing(refused=(f"not stacked: {reason}",))
        return Packing(STACK, stack_part(cfg.device, stack_seeds), aten=run_policy(cfg).stack_kernel_refusal() or "")
    size = group_size(cfg.device, seeds_together)
    if size < 2:
        return Packing()
    reason = group_refusal(cfg, shape)
    if reason is not None:
        return Packing(refused=(f"not in a seed group: {reason}",))
    return Packing(SEED_GROUP, size)


def group_size(device: str, asked: int | None) -> int:
    """Runs a worker steps together as a seed group: CUDA only (on CPU a group would step its
    runs one after another, for nothing)."""
    return (asked or DEFAULT_SEEDS_TOGETHER) if device.startswith("cuda") else 1


def stack_part(device: str, runs: int) -> int:
    """How many of ``runs`` stacked runs step together: all on a GPU, a few on a CPU core."""
    return runs if torch.device(device).type == "cuda" else min(runs, CPU_STACK_PART)


def group_refusal(cfg: RunConfig, shape: Shape) -> str | None:
    """Why ``cfg``'s seeds must train alone rather than as a seed group, or None."""
    reason = run_policy(cfg).graph_refusal()
    if reason is not None:
        return f"its steps are not captured as a CUDA graph ({reason})"
    return dropout_refusal(cfg.arch, shape)


def dropout_refusal(arch: str, shape: Shape) -> str | None:
    """Why runs of ``arch`` may not share one device's steps (dropout), or None."""
    if draws_dropout(_build(arch, shape)):
        return "dropout masks come from the device's one random generator, which grouped runs would share"
    return None


def stack_refusal(cfg: RunConfig, shape: Shape) -> str | None:
    """Why ``cfg``'s seeds cannot be stacked, or (on CPU) would be no cheaper stacked, or None."""
    from .drivers.stacked_training import refusal

    reason = refusal(cfg.arch, *shape)
    if reason is None and cfg.device == "cpu":
        reason = cpu_refusal(cfg.arch, shape)
    return reason


def cpu_refusal(arch: str, shape: Shape) -> str | None:
    """Why stacking runs of ``arch`` would not make them cheaper on a CPU core, or None."""
    _params, flops = arch_cost(arch, *shape)
    if flops > CPU_STACK_MAX_MFLOP * 1e6:
        return (f"on CPU its {flops / 1e6:.1f} training MFLOP per image keep a core busy alone; stacks pay "
                f"off below {CPU_STACK_MAX_MFLOP:g} (docs/performance.md)")
    return None


def draws_dropout(model: nn.Module) -> bool:
    from .drivers.stacked import DROPOUT

    return any(isinstance(m, DROPOUT) and m.p > 0 for m in model.modules())


def _build(arch: str, shape: Shape) -> nn.Module:
    in_channels, num_classes, image_size = shape
    with torch.random.fork_rng(devices=[]):  # building draws weights; the runs' seeds must not notice
        return get_spec(arch).build(in_channels=in_channels, num_classes=num_classes, image_size=image_size)


def _has_checkpoint(task: RunTask) -> bool:
    return task.checkpoint is not None and task.checkpoint.resume and Path(task.checkpoint.path).is_file()

"""The run command's checks: options that cannot make a grid fail before any data loads."""

from __future__ import annotations

import argparse

from ..config import DEFAULT_LR, RunConfig
from ..errors import BenchError
from ..tuning.options import lr_schedule_of


def check_options(args: argparse.Namespace, device: str) -> set[str]:
    """The selected architectures, once every option has been checked against the others and
    a run's config built from them (with the first --dataset as named): one clear error each."""
    names = [n.strip() for n in args.dataset.split(",") if n.strip()]
    if not names:
        raise BenchError("--dataset is empty")
    selected = {c.arch for c in build_configs(args, names[:1], device)}
    if args.baseline is not None and args.baseline not in selected:
        raise BenchError(f"--baseline {args.baseline!r} is not one of the selected architectures (--archs)")
    if args.until_decided and args.seed_list is not None:
        raise BenchError("--until-decided adds seeds 0, 1, 2, ... in rounds of --seeds; it takes no --seed-list")
    if args.until_decided and len(selected) < 2:
        raise BenchError(f"--until-decided trains seeds until architectures' differences are decided; "
                         f"it needs two or more, --archs selects only {', '.join(sorted(selected))}")
    if args.until_decided and args.max_seeds < args.seeds:
        raise BenchError(f"--max-seeds {args.max_seeds} is fewer than one round of --seeds {args.seeds}")
    return selected


def build_configs(args: argparse.Namespace, datasets: list[str], device: str,
                  seeds: list[int] | None = None) -> list[RunConfig]:
    from architectures import UnknownArchitectureError, resolve

    try:
        archs = resolve(args.archs)
    except UnknownArchitectureError as exc:
        raise BenchError(str(exc)) from None
    if seeds is None:
        seeds = args.seed_list if args.seed_list is not None else list(range(args.seeds))
    test_weights = args.test_weights or ("last" if args.val_fraction == 0 else "best-val")
    base = RunConfig(
        arch=archs[0], dataset=datasets[0], seed=seeds[0], epochs=args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, optimizer_impl=args.optimizer_impl,
        lr=args.lr if args.lr is not None else DEFAULT_LR[args.optimizer],
        momentum=args.momentum, weight_decay=args.weight_decay, lr_schedule=lr_schedule_of(args),
        warmup_epochs=getattr(args, "warmup_epochs", 0),
        lr_step=args.lr_step, lr_gamma=args.lr_gamma, val_fraction=args.val_fraction,
        test_weights=test_weights, device=device, dtype=args.dtype, tf32=args.tf32,
        memory_format=args.memory_format, compile=args.compile,
        deterministic=args.deterministic,
    )
    return [base.replace(arch=a, dataset=d, seed=s) for d in datasets for a in archs for s in seeds]

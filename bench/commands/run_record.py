"""What the run command records about an invocation: config.json and the command that reproduces it."""

from __future__ import annotations

import argparse
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import DEFAULT_LR, RunConfig
from ..tuning.options import tuning_flags, tuning_on
from .run_options import chosen_margin

if TYPE_CHECKING:
    from ..datasets.folder import FolderSource
    from ..until_decided import SeedRounds


def reproduce_command(args: argparse.Namespace, configs: list[RunConfig], out: Path,
                      folders: dict[str, FolderSource] | None = None) -> str:
    """The explicit command that reruns this grid and renders the same report, with every
    resolved default spelled out."""
    folders = folders or {}
    base = configs[0]
    archs = list(dict.fromkeys(c.arch for c in configs))
    datasets = [folders[d].spec() if d in folders else d for d in dict.fromkeys(c.dataset for c in configs)]
    seeds = list(dict.fromkeys(c.seed for c in configs))
    if args.until_decided:
        chosen = ["--seeds", str(args.seeds), "--until-decided", "--max-seeds", str(args.max_seeds)]
    else:
        chosen = ["--seed-list", ",".join(map(str, seeds))]
    parts = ["python", "-m", "bench", "--archs", ",".join(archs), "--dataset", ",".join(datasets),
             *chosen, "--epochs", str(base.epochs),
             "--batch-size", str(base.batch_size), "--optimizer", base.optimizer,
             "--lr", repr(_untuned_lr(args, base)),
             "--val-fraction", repr(base.val_fraction), "--test-weights", base.test_weights,
             "--device", base.device, "--out", str(out)]
    if base.optimizer_impl != "fused":
        parts += ["--optimizer-impl", base.optimizer_impl]
    if base.optimizer == "sgd":
        parts += ["--momentum", repr(base.momentum)]
    if base.weight_decay:
        parts += ["--weight-decay", repr(base.weight_decay)]
    if base.lr_schedule != "none":
        parts += ["--lr-schedule", base.lr_schedule, "--lr-step", str(base.lr_step), "--lr-gamma", repr(base.lr_gamma)]
    if base.warmup_epochs:
        parts += ["--warmup-epochs", str(base.warmup_epochs)]
    parts += tuning_flags(args)  # --no-tune too: without it the command would tune by default
    if base.dtype != "float32":
        parts += ["--dtype", base.dtype]
    if base.memory_format != "auto":
        parts += ["--memory-format", base.memory_format]
    if getattr(args, "stack_seeds", 1) > 1:
        parts += ["--stack-seeds", str(args.stack_seeds)]
    for flag in ("tf32", "compile", "deterministic"):
        if getattr(base, flag):
            parts.append(f"--{flag}")
    if args.data_dir:
        parts += ["--data-dir", args.data_dir]
    for ref in getattr(args, "archs_from", None) or ():
        parts += ["--archs-from", ref]
    if getattr(args, "image_size", None):
        parts += ["--image-size", str(args.image_size)]
    names = getattr(args, "evaluation_names", None)
    if names is not None:
        from ..evaluations import default_evaluations

        if tuple(names) != default_evaluations():
            parts += ["--evaluations", ",".join(names) or "none"]
    if args.baseline:
        parts += ["--baseline", args.baseline]
    parts += ["--margin", f"{chosen_margin(args) * 100:g}"]
    if args.target is not None:
        parts += ["--target", repr(args.target)]
    return shlex.join(parts)


def _untuned_lr(args: argparse.Namespace, base: RunConfig) -> float:
    """--lr as given (or its default): a tuned grid's configs hold each network's chosen rate instead."""
    if not tuning_on(args):
        return base.lr
    return args.lr if args.lr is not None else DEFAULT_LR[base.optimizer]


def _command_line(args: argparse.Namespace) -> str:
    return "python -m bench " + shlex.join(getattr(args, "argv", []) or [])


def describe_invocation(args, configs, datasets, fallbacks, outcome, executor, out: Path,
                        started_at: datetime, wall_seconds: float, rounds: SeedRounds | None = None,
                        looks: int = 1, folders: dict | None = None) -> dict:
    """What config.json records about this invocation (the report's header reads it)."""
    from architectures import get_spec
    from architectures.factors import factor_glossary

    from ..environment import environment, git_commit
    from ..stats import ALPHA
    from ..user_networks import loaded_sources

    folders = folders or {}

    archs = list(dict.fromkeys(c.arch for c in configs))
    stats = {d.name: d.pixel_stats() for d in datasets}
    return {
        "command": _command_line(args),
        "reproduce": reproduce_command(args, configs, out, folders),
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": wall_seconds,
        "grid": {
            "archs": archs,
            "datasets": [d.name for d in datasets],
            "seeds": list(dict.fromkeys(c.seed for c in configs)),
        },
        "base_config": {k: v for k, v in configs[0].to_dict().items() if k not in ("arch", "dataset", "seed")},
        "analysis": {
            "margin": chosen_margin(args), "alpha": ALPHA, "target": args.target, "baseline": args.baseline,
            "until_decided": rounds.describe(looks) if rounds is not None else None,
        },
        "datasets": {
            d.name: {
                "classes": list(d.classes),
                "source": d.source,
                "sha256": d.sha256(),
                "fallback_reason": fallbacks.get(d.name),
                "train_size": len(d.train),
                "test_size": len(d.test),
                "image_size": d.image_size,
                "in_channels": d.in_channels,
                "pixel_mean": stats[d.name][0],
                "pixel_std": stats[d.name][1],
                **({"folder": folders[d.name].describe()} if d.name in folders else {}),
            }
            for d in datasets
        },
        "run_ids": [c.run_id() for c in configs],
        "finished_runs": len(outcome.records),
        "reused_runs": outcome.reused,
        "trained_runs": outcome.trained,
        "interrupted": outcome.interrupted is not None,
        # The driver's environment; each run's own (threads included) is in runs.csv.
        "environment": environment(configs[0].device),
        **executor.describe(),
        "arch_info": {a: {"family": get_spec(a).family, "description": get_spec(a).description,
                          "factors": dict(get_spec(a).factors), "tags": sorted(get_spec(a).tags),
                          "source": get_spec(a).source_file}
                      for a in archs},
        # The networks from outside the zoo: report, verify and predict load them again.
        "factor_glossary": factor_glossary(f for a in archs for f in get_spec(a).factors),
        "archs_from": [source.describe() for source in loaded_sources()],
        "git_commit": git_commit(),
    }

"""The tuning stage's command-line options, their defaults, and the flags that reproduce them."""

from __future__ import annotations

import argparse
import os

from .space import parse_space

NO_TUNE_ENV = "CNNBENCH_NO_TUNE"  # set (to anything but 0): --no-tune by default (the test suite's choice)
DEFAULT_TRIALS = 8
DEFAULT_TUNE_EPOCHS = 1
DEFAULT_TUNE_SEEDS = 1
DEFAULT_TUNE_FRACTION = 0.5
DEFAULT_SAMPLER_SEED = 0
TUNED_SCHEDULE = "cosine"  # the schedule a tuned grid trains with unless --lr-schedule says otherwise


def _space(text: str):
    try:
        return parse_space(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def add_tuning_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tuning (before the comparison; see docs/protocol.md)")
    g.add_argument("--tune", action=argparse.BooleanOptionalAction, default=None,
                   help="tune each architecture on its own before comparing: the same quasi-random candidate "
                        "points for all, each chosen by validation accuracy only, then trained on the comparison "
                        f"seeds; --no-tune trains all at --lr (default: tune, unless ${NO_TUNE_ENV} is set)")
    g.add_argument("--tune-trials", type=_count, default=DEFAULT_TRIALS, metavar="N",
                   help=f"candidate points each architecture trains (default {DEFAULT_TRIALS})")
    g.add_argument("--tune-epochs", type=_count, default=DEFAULT_TUNE_EPOCHS, metavar="N",
                   help=f"epochs of a trial (default {DEFAULT_TUNE_EPOCHS})")
    g.add_argument("--tune-seeds", type=_count, default=DEFAULT_TUNE_SEEDS, metavar="N",
                   help=f"seeds per candidate point, their own, disjoint from the comparison's "
                        f"(default {DEFAULT_TUNE_SEEDS})")
    g.add_argument("--tune-fraction", type=_fraction, default=DEFAULT_TUNE_FRACTION, metavar="F",
                   help=f"share of the training split a trial's epoch trains on (default {DEFAULT_TUNE_FRACTION:g})")
    g.add_argument("--tune-space", type=_space, default=None, metavar="SPEC",
                   help="what is tuned over which range, e.g. lr=1e-4:1e-2,weight_decay=1e-6:1e-3 (log axis for "
                        "lr and weight_decay; also momentum, warmup_epochs) (default: lr, 10x either side of "
                        "the optimizer's default rate)")
    g.add_argument("--tune-storage", default=None, metavar="URL",
                   help="the Optuna study's RDB URL, e.g. to share the candidate points between outputs "
                        "(default: sqlite:///OUT/optuna.db)")
    g.add_argument("--tune-sampler-seed", type=int, default=DEFAULT_SAMPLER_SEED, metavar="N",
                   help=f"seed of the scrambled Sobol sequence (default {DEFAULT_SAMPLER_SEED})")


def tuning_on(args: argparse.Namespace) -> bool:
    chosen = getattr(args, "tune", False)
    if chosen is None:
        return os.environ.get(NO_TUNE_ENV, "0") in ("", "0")
    return bool(chosen)


def lr_schedule_of(args: argparse.Namespace) -> str:
    """--lr-schedule as given, else cosine for a tuned grid and none (today's protocol) for an untuned one."""
    given = getattr(args, "lr_schedule", None)
    if given is not None:
        return given
    return TUNED_SCHEDULE if tuning_on(args) else "none"


def tuning_flags(args: argparse.Namespace) -> list[str]:
    """The options that reproduce the tuning stage (or its absence), every default spelled out."""
    if not tuning_on(args):
        return ["--no-tune"]
    from .stage import space_of

    parts = ["--tune", "--tune-trials", str(args.tune_trials), "--tune-epochs", str(args.tune_epochs),
             "--tune-seeds", str(args.tune_seeds), "--tune-fraction", repr(args.tune_fraction),
             "--tune-space", space_of(args).text(), "--tune-sampler-seed", str(args.tune_sampler_seed)]
    if args.tune_storage:
        parts += ["--tune-storage", args.tune_storage]
    return parts

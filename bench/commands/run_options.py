"""The run command's options: their definitions, defaults and argument types.

Imported by ``--help``: nothing heavy (torch, scipy) may load here.
"""

from __future__ import annotations

import argparse
import os

from ..config import DEFAULT_LR, DTYPES, LR_SCHEDULES, MEMORY_FORMATS, OPTIMIZER_IMPLS, OPTIMIZERS, TEST_WEIGHTS
from ..datasets import AUTO, DATA_ENV, FOLDER_PREFIX, dataset_names
from ..executors import DEFAULT_RETRIES, EXECUTORS
from ..tuning.options import add_tuning_options
from ..user_networks import ENTRY_POINT_GROUP

DEFAULT_ARCHS = "tag:default"
DEFAULT_SEEDS = 3
DEFAULT_EPOCHS = 5
DEFAULT_MAX_SEEDS = 21
# Set: the run command's default --evaluations (the test suite's "none"); `evaluate` keeps its own.
EVALUATIONS_ENV = "CNNBENCH_EVALUATIONS"
DEFAULT_MARGIN = 0.0025  # bench.stats.DEFAULT_MARGIN, without importing scipy for --help


def positive_int(text: str) -> int:
    return _number(text, int, "a positive integer", lambda v: v > 0)


def non_negative_int(text: str) -> int:
    return _number(text, int, "a non-negative integer", lambda v: v >= 0)


def positive_float(text: str) -> float:
    return _number(text, float, "a positive number", lambda v: v > 0)


def _number(text, kind, what, ok):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def accuracy(text: str) -> float:
    """A fraction in (0, 1], or a percentage in (1, 100]."""
    value = _number(text, float, "an accuracy in (0, 1] or a percentage in (1, 100]", lambda v: 0 < v <= 100)
    return value / 100 if value > 1 else value


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return seeds


def configure(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to compare")
    g.add_argument("--archs", default=DEFAULT_ARCHS,
                   help="architectures: comma list of names, globs (ablate-*) or tags (tag:seed); "
                        "see `python -m bench list`")
    g.add_argument("--dataset", default=AUTO,
                   help=f"comma list of {', '.join([AUTO, *dataset_names()])} or {FOLDER_PREFIX}PATH "
                        "(your images, one subfolder per class); auto = mnist when it can be found or "
                        "downloaded, else the embedded digits")
    seeds = g.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=positive_int, default=DEFAULT_SEEDS,
                       help="number of seeds: runs use seeds 0..N-1")
    seeds.add_argument("--seed-list", type=seed_list, default=None, help="explicit seeds, e.g. 1,2,3")

    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS, help="epochs per run")
    g.add_argument("--batch-size", type=positive_int, default=64, help="training batch size")
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer")
    g.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default: " + ", ".join(f"{k} {v}" for k, v in DEFAULT_LR.items()) + ")")
    g.add_argument("--optimizer-impl", choices=OPTIMIZER_IMPLS, default="fused",
                   help="fused: torch's one-kernel step for adam and sgd (adadelta has none: "
                        "foreach), faster; foreach: bit-identical to torch's default loop "
                        "(default: fused; recorded, part of the run id)")
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    g.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay")
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=None,
                   help="learning-rate schedule, stepped per epoch (default: cosine when tuning, else none)")
    g.add_argument("--warmup-epochs", type=non_negative_int, default=0,
                   help="cosine schedule: epochs of linear warm-up (default 0)")
    g.add_argument("--lr-step", type=positive_int, default=1, help="epochs between decays (step schedule)")
    g.add_argument("--lr-gamma", type=float, default=0.7, help="decay factor (step schedule)")
    g.add_argument("--val-fraction", type=float, default=0.1,
                   help="stratified share of the training set held out for validation (0 allowed)")
    g.add_argument("--test-weights", choices=TEST_WEIGHTS, default=None,
                   help="weights evaluated on the test set (default: best-val, or last with --val-fraction 0)")

    add_tuning_options(p)

    g = p.add_argument_group("where and how")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="float32, or bf16 autocast (lossy; recorded with the results)")
    g.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on CUDA (lossy; recorded)")
    g.add_argument("--memory-format", choices=MEMORY_FORMATS, default="auto",
                   help="activation memory format; auto picks per architecture and device by a fixed rule")
    g.add_argument("--compile", action="store_true", help="torch.compile each model (slower start)")
    g.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels only (torch.use_deterministic_algorithms, "
                        "CUBLAS_WORKSPACE_CONFIG); ops without one are named in runs.csv (recorded)")
    g.add_argument("--workers", type=positive_int, default=None,
                   help="parallel worker processes (default: one per CPU core on CPU, one per GPU on CUDA; "
                        "more workers than GPUs share them, which keeps a GPU busy with small nets)")
    g.add_argument("--seeds-together", type=positive_int, default=None, metavar="N",
                   help="CUDA, local executor: a worker trains up to N runs that differ only in seed at "
                        "once, as one CUDA graph with a branch per run; each run gives the bits it gives "
                        "alone, and runs with dropout train alone (default 8; 1 = one run at a time; "
                        "no effect on CPU)")
    g.add_argument("--stack-seeds", type=positive_int, default=1, metavar="N",
                   help="local executor: train up to N runs that differ only in seed as one network N times "
                        "as wide (grouped convolutions, batched matmuls), each run with its own weights, "
                        "optimizer state and data order; much cheaper per seed for small nets, but other "
                        "last bits than alone, so recorded (step_mode stacked) and part of the run id; "
                        "networks with dropout train alone, and on CPU networks above 3 training MFLOP "
                        "per image, which a stack makes no cheaper (default 1: every run alone)")
    g.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local processes, or a Ray cluster (pip install 'cnnbench[ray]')")
    g.add_argument("--ray-address", default=None,
                   help="ray executor: 'auto' (a cluster started with `ray start` on this machine) or "
                        "ray://host:port (default: start a private local Ray instance, --workers CPUs)")
    g.add_argument("--gpus-per-run", type=positive_float, default=None,
                   help="ray executor with --device cuda: GPUs per run, a fraction packs runs (default 1)")
    g.add_argument("--retries", type=non_negative_int, default=DEFAULT_RETRIES, metavar="N",
                   help="times a run is tried again when the process training it dies (killed by a "
                        "signal such as the out-of-memory killer's, or crashed); then it is recorded "
                        "failed with the cause and the grid goes on")
    g.add_argument("--ray-retries", type=non_negative_int, dest="retries", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # the option's name before it applied to both executors

    g = p.add_argument_group("files")
    g.add_argument("--out", default=None, help="output directory (default: reports/<dataset>)")
    g.add_argument("--data-dir", default=None,
                   help=f"root holding mnist/ and fashion-mnist/ (also ${DATA_ENV}; then the user cache)")
    g.add_argument("--no-download", action="store_true", help="never try to download a missing dataset")
    g.add_argument("--force", action="store_true", help="retrain runs that are already finished in --out")
    g.add_argument("--checkpoint-every", type=non_negative_int, default=None, metavar="N",
                   help="save a run's full training state each N epochs, so an interrupted run resumes "
                        "mid-way; 0: never (default: whenever a minute of training would otherwise be "
                        "at risk, so an interrupted run loses about a minute and short runs save nothing; "
                        "a run always resumes from a checkpoint it finds)")
    g.add_argument("--no-wait", action="store_true",
                   help="when another cnnbench is writing to --out, stop at once with a line naming it "
                        "(default: wait for it to finish, then reuse what it trained)")
    g.add_argument("--no-report", action="store_true", help="write the tables but do not render the report")

    g = p.add_argument_group("beyond clean accuracy")
    from .evaluate import add_evaluations_option

    add_evaluations_option(g, default=os.environ.get(EVALUATIONS_ENV, "default"))

    g = p.add_argument_group("the answer")
    add_answer_options(g)
    g.add_argument("--until-decided", action="store_true",
                   help="train --seeds seeds a round until every comparison of the (two or more) architectures "
                        "is decided (better, worse or equivalent) or --max-seeds is reached; each round tests at "
                        "the level it spends, so stopping early keeps the false-verdict rate at 5%%")
    g.add_argument("--max-seeds", type=positive_int, default=DEFAULT_MAX_SEEDS, metavar="N",
                   help="with --until-decided: the most seeds per architecture")

    g = p.add_argument_group("your own networks and data")
    g.add_argument("--archs-from", action="append", default=None, metavar="PATH.py|MODULE",
                   help="import networks registered with architectures.register_model from a file or a "
                        "dotted module (repeatable); packages can also register through the "
                        f"'{ENTRY_POINT_GROUP}' entry-point group (default: the built-in zoo and entry points)")
    g.add_argument("--image-size", type=positive_int, default=None, metavar="N",
                   help=f"{FOLDER_PREFIX}PATH datasets: resize every image to NxN (default: keep their size, "
                        "which must then be one square size)")


def add_answer_options(g, stored_first: bool = False) -> None:
    """Options that shape the report's answer (shared with ``bench report``, where the values
    the grid was run with come first: ``stored_first``)."""
    default = "(default: as the grid was run; else " if stored_first else "(default: "
    g.add_argument("--baseline", default=None,
                   help=f"compare every architecture with this one {default}for an ablation family its "
                        "all-reference cell, e.g. standard convs with max-pool; else the first of --archs)")
    g.add_argument("--margin", type=positive_float, default=None, metavar="PP",
                   help=f"equivalence margin in percentage points: a smaller difference counts as no "
                        f"difference {default}{DEFAULT_MARGIN * 100:g}, about two standard errors of one "
                        "accuracy measured on 10,000 test images)")
    g.add_argument("--target", type=accuracy, default=None, metavar="ACC",
                   help="validation accuracy for time to target, as a fraction (0.985) or percent (98.5) "
                        f"{default}the lowest final validation accuracy among the architectures)")


def chosen_margin(args: argparse.Namespace) -> float:
    return DEFAULT_MARGIN if args.margin is None else args.margin / 100

"""The default command: train a grid of architectures x datasets x seeds."""

from __future__ import annotations

import argparse
import shlex
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from typing import TYPE_CHECKING

from ..config import (
    DEFAULT_LR, DTYPES, LR_SCHEDULES, MEMORY_FORMATS, OPTIMIZER_IMPLS, OPTIMIZERS, TEST_WEIGHTS, RunConfig,
)
from ..datasets import AUTO, DATA_ENV, FOLDER_PREFIX, DataSearch, dataset_names, load_dataset, resolve_auto
from ..errors import BenchError
from ..executors import DEFAULT_RETRIES, EXECUTORS, make_executor
from ..until_decided import SeedRounds, answers
from ..user_networks import ENTRY_POINT_GROUP, use_from_command_line

if TYPE_CHECKING:
    from rich.console import Console

    from ..datasets.folder import FolderSource
    from ..datasets.tensors import Dataset

# Heavy modules (torch, the executors, the report) are imported inside the functions that
# use them: --help and a mistyped option answer before any of them loads.

NAME = "run"
DESCRIPTION = """Train every selected architecture on every selected dataset with every seed,
store runs.csv, epochs.csv and confusion.csv in --out, and render the report.

Re-running the same command into the same --out reuses every finished run."""

DEFAULT_ARCHS = "tag:default"
DEFAULT_SEEDS = 3
DEFAULT_EPOCHS = 5
DEFAULT_MAX_SEEDS = 21
DEFAULT_MARGIN = 0.0025  # bench.stats.DEFAULT_MARGIN, without importing scipy for --help
EXIT_RUN_FAILED = 1


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
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="none", help="learning-rate schedule")
    g.add_argument("--lr-step", type=positive_int, default=1, help="epochs between decays (step schedule)")
    g.add_argument("--lr-gamma", type=float, default=0.7, help="decay factor (step schedule)")
    g.add_argument("--val-fraction", type=float, default=0.1,
                   help="stratified share of the training set held out for validation (0 allowed)")
    g.add_argument("--test-weights", choices=TEST_WEIGHTS, default=None,
                   help="weights evaluated on the test set (default: best-val, or last with --val-fraction 0)")

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

    add_evaluations_option(g)

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
        momentum=args.momentum, weight_decay=args.weight_decay, lr_schedule=args.lr_schedule,
        lr_step=args.lr_step, lr_gamma=args.lr_gamma, val_fraction=args.val_fraction,
        test_weights=test_weights, device=device, dtype=args.dtype, tf32=args.tf32,
        memory_format=args.memory_format, compile=args.compile,
        deterministic=args.deterministic,
    )
    return [base.replace(arch=a, dataset=d, seed=s) for d in datasets for a in archs for s in seeds]


def load_datasets(args: argparse.Namespace, console: Console,
                  folders: dict[str, FolderSource] | None = None) -> tuple[list[Dataset], dict[str, str]]:
    """Resolve --dataset (including auto) and load each dataset once in the driver.

    A ``folder:PATH`` dataset is named by its content; ``folders`` receives each one's name
    and where it was read from, which workers need to read it again.
    """
    from ..datasets.folder import FolderSource, load_folder

    search = DataSearch.from_cli(args.data_dir, download=not args.no_download)
    names = [n.strip() for n in args.dataset.split(",") if n.strip()]
    if not names:
        raise BenchError("--dataset is empty")
    if args.image_size is not None and not any(n.startswith(FOLDER_PREFIX) for n in names):
        raise BenchError(f"--image-size applies to {FOLDER_PREFIX}PATH datasets only")
    loaded: list[Dataset] = []
    fallbacks: dict[str, str] = {}
    for name in names:
        if name.startswith(FOLDER_PREFIX):
            source = FolderSource.from_text(name.removeprefix(FOLDER_PREFIX), args.image_size)
            console.print(f"reading images from {source.path} ...")
            dataset = load_folder(source)
            if folders is not None:
                folders[dataset.name] = source
        elif name == AUTO:
            dataset, reason = resolve_auto(search)
            if reason:
                fallbacks[dataset.name] = reason
                console.print(
                    f"[bold yellow]WARNING: MNIST is not available, so this benchmark uses the small "
                    f"embedded 'digits' dataset instead.[/] {reason}", soft_wrap=True)
        else:
            dataset = load_dataset(name, search)
        if all(d.name != dataset.name for d in loaded):
            loaded.append(dataset)
    return loaded, fallbacks


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
             "--batch-size", str(base.batch_size), "--optimizer", base.optimizer, "--lr", repr(base.lr),
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
    parts += ["--margin", f"{_margin(args) * 100:g}"]
    if args.target is not None:
        parts += ["--target", repr(args.target)]
    return shlex.join(parts)


def main(args: argparse.Namespace, console: Console) -> int:
    with ExitStack() as held:  # what run_command holds (the output folder's lock) until it returns
        return run_command(args, console, held)


def run_command(args: argparse.Namespace, console: Console, held: ExitStack) -> int:
    from ..determinism import prepare_environment
    from ..devices import device_name, resolve_device
    from ..lock import OutputLock
    from ..network_check import check_networks
    from ..samples import save_samples
    from ..storage import prepare_output_dir, remove_temporaries, write_invocation
    from ..tasks import provide_dataset

    started_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    if args.deterministic:
        prepare_environment()  # before anything touches CUDA, and inherited by workers
    device = resolve_device(args.device)
    use_from_command_line(args.archs_from)  # before names are resolved: they may be the user's
    # Validate options before the (slow) data loading, so a typo fails in a blink.
    selected = {c.arch for c in build_configs(args, ["digits"], device)}
    if args.baseline is not None and args.baseline not in selected:
        raise BenchError(f"--baseline {args.baseline!r} is not one of the selected architectures (--archs)")
    if args.until_decided and args.seed_list is not None:
        raise BenchError("--until-decided adds seeds 0, 1, 2, ... in rounds of --seeds; it takes no --seed-list")
    if args.until_decided and len(selected) < 2:
        raise BenchError(f"--until-decided trains seeds until architectures' differences are decided; "
                         f"it needs two or more, --archs selects only {', '.join(sorted(selected))}")
    if args.until_decided and args.max_seeds < args.seeds:
        raise BenchError(f"--max-seeds {args.max_seeds} is fewer than one round of --seeds {args.seeds}")
    from ..evaluations import resolve_evaluations

    args.evaluation_names = resolve_evaluations(args.evaluations)
    executor = make_executor(args.executor, workers=args.workers, device=device, ray_address=args.ray_address,
                             gpus_per_run=args.gpus_per_run, retries=args.retries,
                             seeds_together=args.seeds_together, stack_seeds=args.stack_seeds)
    folders: dict = {}
    datasets, fallbacks = load_datasets(args, console, folders)
    names = [d.name for d in datasets]
    # Every network on every input shape, before anything is written or trained.
    check_networks(dict.fromkeys(c.arch for c in build_configs(args, names, device)),
                   {(d.in_channels, d.image_size, d.num_classes) for d in datasets})
    alone = stack_refusals(args, datasets, device, console)
    out = Path(args.out) if args.out else Path("reports") / "-".join(names)
    prepare_output_dir(out)

    # One writer per output folder, for everything this command writes there, until it returns.
    held.enter_context(OutputLock(out, command=_command_line(args), wait=not args.no_wait,
                                  on_note=lambda line: say(console, line)))
    remove_temporaries(out)  # what a writer killed mid-write left: no one else writes here now
    for dataset in datasets:
        provide_dataset(dataset)  # the in-process executor reuses the driver's copy
        save_samples(out, dataset)

    rounds = SeedRounds(args.seeds, args.max_seeds) if args.until_decided else None
    configs = stack(build_configs(args, names, device, _round_seeds(rounds, 0)), args, alone)
    console.print(
        f"cnnbench: {len({c.arch for c in configs})} architectures x {len(datasets)} dataset(s) x "
        f"{len({c.seed for c in configs})} seeds{' a round' if rounds else ''} = {len(configs)} runs of "
        f"{configs[0].epochs} epochs on {device} ({device_name(device)}), output in {out}", soft_wrap=True)
    looks = trained = 0
    while True:
        outcome = train_grid(args, configs, out, executor, console, folders)
        looks, trained = looks + 1, trained + outcome.trained
        if rounds is None or outcome.interrupted is not None or not ask_again(args, rounds, looks, outcome, console):
            break
        configs = stack(build_configs(args, names, device, _round_seeds(rounds, looks)), args, alone)
    save_errors_of(out, datasets, outcome.records)
    if outcome.interrupted is None:
        evaluate_reused(out, datasets, outcome.records, args, console)

    write_invocation(out, describe_invocation(args, configs, datasets, fallbacks, outcome, executor, out,
                                              started_at, time.perf_counter() - t0, rounds, looks, folders))

    if outcome.interrupted is not None:
        console.print(
            f"interrupted by {outcome.interrupted}: kept {len(outcome.records)} of {len(configs)} finished "
            f"run(s) in {out}; run the same command again to resume", soft_wrap=True)
        # The shell's convention: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM).
        return 128 + outcome.interrupted.signum

    console.print(
        f"{len(outcome.records)} runs ({len(outcome.records) - trained} reused, {trained} trained) in "
        f"{time.perf_counter() - t0:.1f} s; tables in {out}", soft_wrap=True)
    status = render_after_run(out, console) if not args.no_report else 0
    for record in outcome.failed:
        console.print(f"[red]failed:[/] {record.config.arch} seed {record.config.seed}: {record.error}",
                      soft_wrap=True)
    return status or (EXIT_RUN_FAILED if outcome.failed else 0)


def stack_refusals(args: argparse.Namespace, datasets: list[Dataset], device: str,
                   console: Console) -> set[tuple[str, str]]:
    """With --stack-seeds: the (arch, dataset) runs that train alone, each said once with why."""
    if args.stack_seeds < 2:
        return set()
    from ..fast.stacked_training import cpu_refusal, refusal

    alone = set()
    for cfg in build_configs(args, [d.name for d in datasets], device, [0]):
        d = next(d for d in datasets if d.name == cfg.dataset)
        shape = (cfg.arch, d.in_channels, d.num_classes, d.image_size)
        reason = refusal(*shape) or (cpu_refusal(*shape) if device == "cpu" else None)
        if reason is not None:
            alone.add((cfg.arch, cfg.dataset))
            say(console, f"{cfg.arch} trains alone, not stacked: {reason}")
    return alone


def stack(configs: list[RunConfig], args: argparse.Namespace, alone: set[tuple[str, str]]) -> list[RunConfig]:
    """The runs --stack-seeds stacks, marked so (stacking is part of what a run is)."""
    if args.stack_seeds < 2:
        return configs
    return [c if (c.arch, c.dataset) in alone else c.replace(stacked=True) for c in configs]


def train_grid(args: argparse.Namespace, configs: list[RunConfig], out: Path, executor, console: Console,
               folders: dict):
    """Train (or reuse) every run of ``configs``, with progress on the console."""
    from ..progress import GridProgress
    from ..runner import run_grid
    from ..tasks import DataRequest

    state: dict[str, GridProgress] = {}

    def on_start(total: int, reused: int) -> None:
        if reused:
            console.print(f"reusing {reused} finished run(s) from {out} (use --force to retrain)")
        state["progress"] = GridProgress(console, total, reused).__enter__()

    try:
        return run_grid(
            configs, out, executor, DataRequest(args.data_dir, download=False, folders=tuple(folders.items())),
            force=args.force,
            checkpoint_every=args.checkpoint_every, target=args.target, on_start=on_start,
            on_epoch=lambda cfg, rec: state["progress"].on_epoch(cfg, rec),
            on_run=lambda rec: state["progress"].on_run(rec),
            on_note=lambda line: say(console, line), evaluations=args.evaluation_names,
        )
    finally:
        if "progress" in state:
            state["progress"].__exit__(None, None, None)


def say(console: Console, line: str) -> None:
    """A line as written: no rich markup or highlighting in paths and names."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _round_seeds(rounds: SeedRounds | None, index: int) -> list[int] | None:
    return None if rounds is None else list(range(rounds.look(index).n_seeds))


def ask_again(args: argparse.Namespace, rounds: SeedRounds, looks: int, outcome, console: Console) -> bool:
    """After round ``looks``: say what is decided; True when another round should train."""
    from architectures import resolve

    from ..stats import UNDECIDED, describe

    look = rounds.look(looks - 1)
    found = answers(outcome.records, margin=_margin(args), look=look, baseline=args.baseline,
                    order=resolve(args.archs))
    open_ = [c for c in found if c.verdict == UNDECIDED]
    console.print(f"round {looks}: {look.n_seeds} seeds, {len(found) - len(open_)} of {len(found)} "
                  f"comparisons decided (tested at alpha {look.alpha():.2g})", soft_wrap=True)
    for c in open_:
        console.print(f"  {describe(c)}", soft_wrap=True, markup=False)
    if open_ and look.is_last:
        console.print(f"--max-seeds {rounds.max_seeds} reached with {len(open_)} comparison(s) undecided",
                      soft_wrap=True)
    return bool(open_) and not look.is_last


def _margin(args: argparse.Namespace) -> float:
    return DEFAULT_MARGIN if args.margin is None else args.margin / 100


def save_errors_of(out: Path, datasets: list[Dataset], records) -> None:
    """Store the test images any run got wrong (the report's gallery of disagreements)."""
    from ..samples import save_errors

    for dataset in datasets:
        wrong = [~r.test_correct for r in records
                 if r.config.dataset == dataset.name and r.test_correct is not None]
        save_errors(out, dataset, wrong)


def evaluate_reused(out: Path, datasets: list[Dataset], records, args: argparse.Namespace,
                    console: Console) -> None:
    """Evaluate finished runs that lack an asked evaluation (trained before it existed, or
    with --evaluations none) on their stored weights, store what each evaluation shows."""
    from ..evaluate import evaluate_records, missing, save_examples
    from ..storage import write_tables

    names = args.evaluation_names
    todo = [r for r in records if missing(r, names)]
    if todo:
        say(console, f"evaluating {len(todo)} reused run(s) with {', '.join(names)} on their stored weights")
        evaluate_records(out, todo, names, {d.name: d for d in datasets})
        write_tables(out, records, args.target)
    for dataset in datasets:
        save_examples(out, dataset, names)


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
            "margin": _margin(args), "alpha": ALPHA, "target": args.target, "baseline": args.baseline,
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
        "factor_glossary": factor_glossary(f for a in archs for f in get_spec(a).factors),
        # The networks from outside the zoo: report, verify and predict load them again.
        "archs_from": [source.describe() for source in loaded_sources()],
        "git_commit": git_commit(),
    }


def render_after_run(out: Path, console: Console) -> int:
    """Render the report from the stored tables (the report reads files, never memory); the exit
    status it leaves (0 when rendered).

    The tables are already written, so a failure here loses nothing: one line says what failed,
    where its traceback is and how to retry, and the command still ends non-zero.
    """
    from rich.console import Console

    from ..errors import ReportFailed
    from ..report import render_or_keep_traceback

    try:
        path = render_or_keep_traceback(out)
    except ReportFailed as exc:
        Console(stderr=True, highlight=False).print(f"error: {exc}", markup=False, soft_wrap=True)
        return exc.exit_code
    except BenchError as exc:
        raise BenchError(f"{exc} (the results are stored in {out}; "
                         f"re-render with: python -m bench report {out})") from None
    console.print(f"report: {path}")
    return 0

"""The default command: train a grid of architectures x datasets x seeds.

Its options are in ``run_options``, their checks in ``run_checks``, what it records about an
invocation in ``run_record``; this module runs the grid.
"""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from typing import TYPE_CHECKING

from ..config import RunConfig
from ..datasets import AUTO, FOLDER_PREFIX, DataSearch, load_dataset, resolve_auto
from ..errors import BenchError
from ..executors import make_executor
from ..tuning.options import tuning_on
from ..until_decided import SeedRounds, answers
from ..user_networks import use_from_command_line
from .run_checks import build_configs, check_options
from .run_options import (  # noqa: F401 - the command's options, as the CLI and other commands find them
    DEFAULT_ARCHS, DEFAULT_EPOCHS, DEFAULT_MARGIN, DEFAULT_MAX_SEEDS, DEFAULT_SEEDS, accuracy, add_answer_options,
    chosen_margin, configure, non_negative_int, positive_float, positive_int, seed_list,
)
from .run_record import _command_line, describe_invocation, reproduce_command  # noqa: F401

if TYPE_CHECKING:
    from rich.console import Console

    from ..datasets.folder import FolderSource
    from ..datasets.tensors import Dataset
    from ..tuning.stage import Tuning

# Heavy modules (torch, the executors, the report) are imported inside the functions that
# use them: --help and a mistyped option answer before any of them loads.

NAME = "run"
DESCRIPTION = """Train every selected architecture on every selected dataset with every seed,
store runs.csv, epochs.csv and confusion.csv in --out, and render the report.

Re-running the same command into the same --out reuses every finished run."""

EXIT_RUN_FAILED = 1


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


def main(args: argparse.Namespace, console: Console) -> int:
    with ExitStack() as held:  # what run_command holds (the output folder's lock) until it returns
        return run_command(args, console, held)


def run_command(args: argparse.Namespace, console: Console, held: ExitStack) -> int:
    from ..determinism import prepare_environment
    from ..devices import device_name, resolve_device
    from ..learning import not_learning_lines
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
    check_options(args, device)  # before the (slow) data loading, so a typo fails in a blink
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
    packing = plan_packing(args, datasets, device, console)
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
    # Tuning first (bench.tuning): the comparison trains each architecture at its chosen point.
    tuning = tune_first(args, build_configs(args, names, device, [0]), out, executor, console, folders,
                        lambda where, cfgs, outcome: describe_invocation(
                            args, cfgs, datasets, fallbacks, outcome, executor, where, started_at,
                            time.perf_counter() - t0, folders=folders)) if tuning_on(args) else None
    if tuning is not None and tuning.interrupted is not None:
        console.print(f"interrupted by {tuning.interrupted} while tuning: the finished trials are kept in "
                      f"{out}; run the same command again to resume", soft_wrap=True)
        return 128 + tuning.interrupted.signum
    tuned = tuning.apply if tuning is not None else list
    configs = packing.configs(tuned(build_configs(args, names, device, _round_seeds(rounds, 0))))
    console.print(
        f"cnnbench: {len({c.arch for c in configs})} architectures x {len(datasets)} dataset(s) x "
        f"{len({c.seed for c in configs})} seeds{' a round' if rounds else ''} = {len(configs)} runs of "
        f"{configs[0].epochs} epochs on {device} ({device_name(device)}), output in {out}", soft_wrap=True)
    looks = trained = 0
    while True:
        outcome = train_grid(args, configs, out, executor, console, folders, packing)
        looks, trained = looks + 1, trained + outcome.trained
        if rounds is None or outcome.interrupted is not None or not ask_again(args, rounds, looks, outcome, console):
            break
        configs = packing.configs(tuned(build_configs(args, names, device, _round_seeds(rounds, looks))))
    save_errors_of(out, datasets, outcome.records)
    if outcome.interrupted is None:
        evaluate_reused(out, datasets, outcome.records, args, console)

    invocation = describe_invocation(args, configs, datasets, fallbacks, outcome, executor, out,
                                     started_at, time.perf_counter() - t0, rounds, looks, folders)
    write_invocation(out, {**invocation, "tuning": tuning.describe() if tuning is not None else None})
    for line in not_learning_lines(outcome.records):
        say(console, line)

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


def tune_first(args: argparse.Namespace, bases: list[RunConfig], out: Path, executor, console: Console,
               folders: dict, describe) -> Tuning:
    """The tuning stage (bench.tuning.stage): its trials train like a grid, into OUT/tuning."""
    from ..storage import write_invocation
    from ..tuning.stage import run_tuning

    def train(trials: list[RunConfig], where: Path):
        where.mkdir(parents=True, exist_ok=True)
        outcome = train_grid(args, trials, where, executor, console, folders)
        write_invocation(where, describe(where, trials, outcome))
        return outcome

    return run_tuning(args, bases, out, train, lambda line: say(console, line))


def plan_packing(args: argparse.Namespace, datasets: list[Dataset], device: str, console: Console):
    """Which runs train together (``bench.planner``), each packing refused said once with why."""
    from ..planner import plan_grid

    shapes = {d.name: (d.in_channels, d.num_classes, d.image_size) for d in datasets}
    packing = plan_grid(build_configs(args, list(shapes), device, [0]), shapes,
                        stack_seeds=args.stack_seeds, seeds_together=args.seeds_together)
    for line in packing.notes():
        say(console, line)
    return packing


def train_grid(args: argparse.Namespace, configs: list[RunConfig], out: Path, executor, console: Console,
               folders: dict, packing=None):
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
            on_note=lambda line: say(console, line), packing=packing, evaluations=args.evaluation_names,
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
    found = answers(outcome.records, margin=chosen_margin(args), look=look, baseline=args.baseline,
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

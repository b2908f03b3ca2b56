"""``python -m bench perf``: cnnbench's training speed against the tutorial recipe."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import DTYPES, MEMORY_FORMATS, RunConfig
from ..datasets import DATA_ENV, DataSearch, load_dataset
from ..errors import BenchError
from ..perf import DEFAULT_ARCHS
from .run import non_negative_int, positive_int

if TYPE_CHECKING:
    import pandas as pd

    from ..perf.table import PerfTiming
    from rich.console import Console
    from rich.table import Table

    from ..datasets.prepared import PreparedData

NAME = "perf"
DESCRIPTION = """Measure training speed: the tutorial recipe (torchvision MNIST + ToTensor/Normalize +
DataLoader, eager Adam steps) against cnnbench's own training path, same architecture,
batch size, optimizer and data, in one process.  Prints images/s, the ratio, the geometric
mean of the ratios, training FLOPs per image and the share of a fp32 matmul's FLOP/s."""

DEFAULT_STEPS = 100
DEFAULT_WARMUP = 20
DEFAULT_REPEATS = 3
BATCH_SIZE = 64


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--archs", default=",".join(DEFAULT_ARCHS), help="architectures to time")
    p.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist", "digits"),
                   help="training data (digits: embedded, for a quick check)")
    p.add_argument("--data-dir", default=None, help=f"root holding mnist/ and fashion-mnist/ (also ${DATA_ENV})")
    p.add_argument("--steps", type=positive_int, default=DEFAULT_STEPS,
                   help="timed training steps per path and architecture")
    p.add_argument("--warmup", type=non_negative_int, default=DEFAULT_WARMUP, help="untimed steps first")
    p.add_argument("--full", action="store_true", help="time whole epochs per path instead of --steps")
    p.add_argument("--repeats", type=positive_int, default=None,
                   help=f"timed blocks per path, alternating the paths; the fastest block counts "
                        f"(default: {DEFAULT_REPEATS}, or 1 with --full)")
    p.add_argument("--device", default="cpu", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads for the recipe and the FLOP roof (default: torch's default, one "
                        "per core); the cnnbench path uses what a run uses (one on CPU, as grid "
                        "workers run, one per core)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="trainers for the per-machine figure, each a process training its own run "
                        "on one thread, all timed at once as a grid trains (default: one per core "
                        "on CPU, one on a GPU)")
    p.add_argument("--seeds-together", type=positive_int, default=None, metavar="N",
                   help="instead of --workers: the per-machine figure is N seeds stepped together in this "
                        "process as a seed group, as a CUDA grid's worker trains them (one CUDA graph with a "
                        "branch per run; on CPU one run after another)")
    p.add_argument("--stack-seeds", type=positive_int, default=None, metavar="N",
                   help="instead of --workers: the per-machine figure is N seeds trained as one stack, as "
                        "a grid with --stack-seeds N trains them (on CPU in parts, one after another); "
                        "runs_cost_vs_one and runs_cost_vs_alone compare it with one run and with N runs alone")
    p.add_argument("--memory-format", choices=MEMORY_FORMATS, default="auto",
                   help="cnnbench path's memory format (auto = bench.train's fixed rule)")
    p.add_argument("--compile", action="store_true", help="torch.compile the cnnbench path (compile time untimed)")
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="cnnbench path's dtype (bf16 is lossy)")
    p.add_argument("--grid", default=None, metavar="RESULTS",
                   help="instead: train every run of the finished grid in RESULTS (an --out folder) "
                        "with the recipe, one after another, each epoch followed by the tutorial's "
                        "test pass, and compare that wall time with the grid's (slow: the whole "
                        "grid's work on one process)")
    p.add_argument("--csv", default=None,
                   help="where to write the table (default: reports/perf-<dataset>.csv, "
                        "or reports/perf-grid-<dataset>.csv with --grid)")


def _archs(selector: str) -> list[str]:
    from architectures import UnknownArchitectureError, resolve

    try:
        return resolve(selector)
    except UnknownArchitectureError as exc:
        raise BenchError(str(exc)) from None


def _trains_alone(args: argparse.Namespace, cfg: RunConfig, data: PreparedData) -> str | None:
    """Why a grid would not step ``cfg``'s seeds together as --stack-seeds or --seeds-together
    asks (dropout, an unknown layer), or None.  The CPU cost rule is left out: perf re-checks it."""
    from ..planner import dropout_refusal

    shape = (data.in_channels, len(data.classes), data.image_size)
    if args.stack_seeds:
        from ..drivers.stacked_training import refusal

        reason = refusal(cfg.arch, *shape)
        return None if reason is None else f"not stacked: {reason}"
    reason = dropout_refusal(cfg.arch, shape)
    return None if reason is None else f"not in a seed group: {reason}"


def _cpu_rule(args: argparse.Namespace, cfg: RunConfig, data: PreparedData) -> str | None:
    """With --stack-seeds on CPU: why a grid would train ``cfg``'s seeds alone there, or None."""
    if not args.stack_seeds or cfg.device != "cpu":
        return None
    from ..planner import cpu_refusal

    return cpu_refusal(cfg.arch, (data.in_channels, len(data.classes), data.image_size))


def main(args: argparse.Namespace, console: Console) -> int:
    import torch

    from ..datasets.prepared import prepare_data
    from ..devices import device_name, resolve_device
    from ..fast.policy import run_threads
    from ..perf.machine import MachineTrainers
    from ..perf.recipe import recipe_loader, torchvision_root
    from ..perf.roof import matmul_flops_per_s
    from ..perf.table import perf_table

    started = time.perf_counter()
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.grid is not None:
        return grid_main(args, device, console, started)
    archs = _archs(args.archs)
    chosen = [flag for flag, value in (("--seeds-together", args.seeds_together), ("--workers", args.workers),
                                       ("--stack-seeds", args.stack_seeds)) if value]
    if len(chosen) > 1:
        raise BenchError(f"{' and '.join(chosen)} are different per-machine figures: choose one")
    search = DataSearch.from_cli(args.data_dir, download=False)
    dataset = load_dataset(args.dataset, search)
    if dataset.image_size != 28 or dataset.in_channels != 1:
        raise BenchError(f"perf needs 28x28 single-channel images, {dataset.name} has another shape")
    mean, std = dataset.pixel_stats()
    steps = None if args.full else args.steps
    if args.repeats is None:
        args.repeats = 1 if args.full else DEFAULT_REPEATS
    data = prepare_data(dataset, 0.0, device)  # the whole training set, as the recipe uses
    together, workers, per_machine = _per_machine(args, device)

    console.print(
        f"cnnbench perf: {len(archs)} architectures on {dataset.name}, batch {BATCH_SIZE}, Adam, "
        f"best of {args.repeats} blocks of {'one epoch' if steps is None else f'{steps} steps'} "
        f"after {args.warmup} warm-up steps, "
        f"{device} ({device_name(device)}), recipe and machine roof on {torch.get_num_threads()} thread(s), "
        f"cnnbench and its roof on {_run_threads(device)} as its runs; per machine {per_machine}",
        soft_wrap=True)
    timings: list[PerfTiming] = []
    with (tempfile.TemporaryDirectory(prefix="cnnbench-perf-") as scratch,
          MachineTrainers(workers, dataset.name, search, device) as machine):
        machine_roof = matmul_flops_per_s(device)
        # a run's share is of what its own threads can do: one core on CPU
        with run_threads(device):
            roof = matmul_flops_per_s(device) if device == "cpu" else machine_roof
        root, tv_name = torchvision_root(dataset, Path(scratch))
        loader = recipe_loader(root, tv_name, mean, std, BATCH_SIZE)
        for arch in archs:
            cfg = RunConfig(
                arch=arch, dataset=dataset.name, batch_size=BATCH_SIZE, optimizer="adam", lr=1e-3,
                val_fraction=0.0, test_weights="last", device=device, dtype=args.dtype,
                memory_format=args.memory_format, compile=args.compile)
            timings.append(_time_arch(args, cfg, data, loader, machine, steps, workers, together, console))
    table = perf_table(timings, roof, machine_roof)
    table["device"] = device_name(device)
    table["per_machine"] = per_machine
    table["recipe_threads"] = torch.get_num_threads()
    table["cnnbench_threads"] = _run_threads(device)
    table["mode"] = "epoch" if steps is None else f"{steps} steps"
    table["repeats"] = args.repeats
    table["dataset"] = dataset.name
    return _show(table, roof, machine_roof, args.csv, dataset.name, console, started)


def _per_machine(args: argparse.Namespace, device: str) -> tuple[int, int, str]:
    """The per-machine figure asked for: (seeds together, trainer processes, its description)."""
    from ..executors.local import default_workers

    together = args.seeds_together or args.stack_seeds or 1
    if args.seeds_together or args.stack_seeds:
        workers = 1  # the per-machine figure is one process's runs
    else:
        workers = args.workers or (default_workers(device) if device == "cpu" else 1)
    per_machine = (f"{together} seeds stepped together" if args.seeds_together
                   else f"{together} seeds stacked" if args.stack_seeds else f"{workers} trainer(s) at once")
    return together, workers, per_machine


def _show(table: pd.DataFrame, roof: float, machine_roof: float, csv: str | None, dataset: str, console: Console,
          started: float) -> int:
    """Print the table, then write it to --csv."""
    if not console.is_terminal:
        console.width = max(console.width, 180)  # a pipe or log gets the whole table, unwrapped
    console.print(render(table, roof, machine_roof))  # first: a bad --csv must not lose the measurement
    out = Path(csv) if csv else Path("reports") / f"perf-{dataset}.csv"
    _write_csv(out, table)
    console.print(f"table written to {out} ({time.perf_counter() - started:.0f} s in all)")
    return 0


def _time_arch(args: argparse.Namespace, cfg: RunConfig, data: PreparedData, loader, machine, steps: int | None,
               workers: int, together: int, console: Console) -> PerfTiming:
    """One architecture's recipe, cnnbench path and per-machine figure, their blocks alternating."""
    import torch

    from ..perf.native import NativeSession, SeedGroupSession, StackedSession
    from ..perf.recipe import RecipeSession
    from ..perf.table import PerfTiming

    arch, device = cfg.arch, cfg.device
    recipe, native = RecipeSession(arch, loader, device=device), NativeSession(cfg, data)
    training = native.training
    alone = _trains_alone(args, cfg, data) if together > 1 else None
    sessions = {"recipe": recipe, "native": native}
    if alone is None and (args.seeds_together or args.stack_seeds):
        sessions["together"] = (StackedSession(cfg, data, together) if args.stack_seeds
                                else SeedGroupSession(cfg, data, together))
    for session in sessions.values():
        session.warm_up(args.warmup)
    # Alternate the paths and keep each one's fastest block: the block least disturbed
    # by whatever else the machine is doing, for all alike (and so for their ratios).
    blocks = {name: [] for name in sessions}
    for _ in range(args.repeats):
        for name, session in sessions.items():
            blocks[name].append(session.block(steps))
    best = {name: max(taken, key=lambda b: b[0] / b[1]) for name, taken in blocks.items()}
    (recipe_images, recipe_seconds), (native_images, native_seconds) = best["recipe"], best["native"]
    machine_step_mode = training.step_mode
    if alone is not None:
        # What a grid does with these seeds: one run after another, each at the per-run pace.
        console.print(f"  {arch}: a grid trains its seeds alone, {alone}", soft_wrap=True)
        machine_images, machine_seconds = native_images, native_seconds
    elif "together" in sessions:
        machine_step_mode = sessions.pop("together").step_mode
        machine_images, machine_seconds = best["together"]
        rule = _cpu_rule(args, cfg, data)
        if rule is not None:
            console.print(f"  {arch}: stacked here to re-check the rule by which a CPU grid trains its "
                          f"seeds alone: {rule}", soft_wrap=True)
    elif workers > 1:
        machine_images, machine_seconds = max(
            machine.measure(cfg, data, steps, args.warmup, args.repeats), key=lambda b: b[0] / b[1])
    else:  # one trainer: the machine trains what one run does
        machine_images, machine_seconds = native_images, native_seconds
    timing = PerfTiming(
        arch=arch, recipe_images=recipe_images, recipe_seconds=recipe_seconds,
        native_images=native_images, native_seconds=native_seconds,
        flops_per_image=training.flops_per_image,
        memory_format="channels_last" if training.memory_format == torch.channels_last else "contiguous",
        step_mode=training.step_mode, machine_step_mode=machine_step_mode,
        machine_images=machine_images, machine_seconds=machine_seconds, workers=max(workers, together),
    )
    console.print(f"  {arch}: recipe {recipe_images / recipe_seconds:,.0f} images/s, "
                  f"cnnbench {native_images / native_seconds:,.0f} images/s per run, "
                  f"{machine_images / machine_seconds:,.0f} per machine (best of {args.repeats})"
                  + (f"; {timing.workers} runs at once cost {timing.runs_cost_vs_one:.2f}x the time of one"
                     f" ({timing.runs_cost_vs_alone:.2f}x the time of {timing.workers} alone)"
                     if timing.workers > 1 else ""))
    return timing


def grid_main(args: argparse.Namespace, device: str, console: Console, started: float) -> int:
    """``--grid``: the stored grid's wall time against the sequential recipe's, both measured."""
    import torch

    from ..perf.grid import TEST_BATCH, grid_table, read_grid, sequential_recipe
    from ..perf.recipe import recipe_loader, torchvision_root

    grid = read_grid(Path(args.grid))
    dataset = load_dataset(grid.dataset, DataSearch.from_cli(args.data_dir, download=False))
    mean, std = dataset.pixel_stats()
    console.print(
        f"cnnbench perf --grid: {len(grid.runs)} runs of {grid.epochs} epochs from {grid.out} "
        f"({len(grid.archs)} architectures x {len(grid.seeds)} seeds on {grid.dataset}, grid wall "
        f"{grid.wall_seconds:.0f} s), now trained one after another with the recipe on {device}, "
        f"{torch.get_num_threads()} thread(s)", soft_wrap=True)
    with tempfile.TemporaryDirectory(prefix="cnnbench-perf-") as scratch:
        root, tv_name = torchvision_root(dataset, Path(scratch))
        loader = recipe_loader(root, tv_name, mean, std, grid.batch_size)
        test_loader = recipe_loader(root, tv_name, mean, std, TEST_BATCH, train=False)
        timings = sequential_recipe(
            grid, loader, test_loader, device,
            on_run=lambda arch, seed, s: console.print(f"  recipe {arch} seed {seed}: {s:.1f} s"))
    table = grid_table(timings, grid)
    total = table.iloc[-1]
    console.print(
        f"the {len(grid.runs)} runs one after another with the recipe: {total.recipe_seconds:.0f} s; "
        f"the grid: {grid.wall_seconds:.0f} s; speed-up {total.speedup:.2f}x", style="bold", soft_wrap=True)
    out = Path(args.csv) if args.csv else Path("reports") / f"perf-grid-{grid.dataset}.csv"
    _write_csv(out, table)
    console.print(f"table written to {out} ({time.perf_counter() - started:.0f} s in all)")
    return 0


def _write_csv(out: Path, table: pd.DataFrame) -> None:
    from ..storage import atomic_write_text

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, table.to_csv(index=False))
    except OSError as exc:
        raise BenchError(f"cannot write --csv {out}: {exc.strerror or exc}") from None


def _run_threads(device: str) -> int:
    """How many torch threads a run uses, as the policy's ``run_threads`` sets them."""
    import torch

    from ..fast.policy import run_threads

    with run_threads(device):
        return torch.get_num_threads()


def render(table, roof: float, machine_roof: float) -> Table:
    from rich.table import Table

    from ..perf.table import GEOMEAN_ROW

    per_machine = table["per_machine"].iloc[0] if len(table) else "1 trainer(s) at once"
    roofs = (f"{roof / 1e9:,.0f} GFLOP/s" if roof == machine_roof else
             f"{roof / 1e9:,.0f} GFLOP/s on a run's thread, {machine_roof / 1e9:,.0f} on the machine's")
    out = Table(title=f"training speed, batch {BATCH_SIZE}, Adam (FLOP roof: fp32 matmul {roofs}); "
                      f"per machine: {per_machine}",
                title_justify="left")
    for name in ("arch", "recipe img/s", "cnnbench per run img/s", "speed-up per run", "per machine img/s",
                 "speed-up per machine", "train MFLOP/img", "per run GFLOP/s", "of roof", "per machine of roof",
                 "memory format", "steps"):
        out.add_column(name, justify="left" if name in ("arch", "memory format", "steps") else "right")
    for row in table.itertuples():
        if row.arch == GEOMEAN_ROW:
            out.add_section()
            out.add_row(row.arch, "", "", f"{row.speedup:.2f}x", "", f"{row.machine_speedup:.2f}x",
                        "", "", "", "", "", "", style="bold")
            continue
        out.add_row(row.arch, f"{row.recipe_images_per_s:,.0f}", f"{row.cnnbench_images_per_s:,.0f}",
                    f"{row.speedup:.2f}x", f"{row.machine_images_per_s:,.0f}", f"{row.machine_speedup:.2f}x",
                    f"{row.train_mflops_per_image:.2f}", f"{row.cnnbench_gflops_per_s:.1f}",
                    f"{row.roof_fraction:.1%}", f"{row.machine_roof_fraction:.1%}", row.memory_format, row.step_mode)
    return out

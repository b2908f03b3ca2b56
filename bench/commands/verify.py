"""``python -m bench verify``: retrain one finished run and check it reproduces.

The run is retrained from its stored config (same seed, same data, same device) in this
process, without writing anything into the output directory.  On CPU, and on CUDA with
``--deterministic``, the metrics and weights must match bit for bit; on CUDA without it,
kernels such as cuDNN's convolution backward sum in a varying order, so the check allows
a stated tolerance instead (``--tolerance``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import RunConfig
from ..datasets import DataSearch, load_dataset
from ..errors import BenchError
from ..schema import STATUS_FAILED

if TYPE_CHECKING:
    import torch
    from rich.console import Console

    from ..records import RunRecord

NAME = "verify"
DESCRIPTION = """Retrain one finished run from its stored config and report whether its metrics
match: bit for bit on CPU (and on CUDA with --deterministic), within --tolerance on CUDA.
Exit status 0 on a match, 1 on a mismatch."""

DEFAULT_TOLERANCE = 0.01
# The per-epoch and test metrics compared; timings are not results and are left out.
EPOCH_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr")
EXIT_MISMATCH = 1


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="an output directory of `python -m bench`")
    p.add_argument("--arch", required=True, help="architecture of the run to retrain")
    p.add_argument("--seed", type=int, required=True, help="seed of the run to retrain")
    p.add_argument("--dataset", default=None, help="which dataset's run, when the grid had several")
    p.add_argument("--data-dir", default=None,
                   help="where the dataset is (default: where the run read it, as stored in config.json)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="CUDA without --deterministic only: largest accepted absolute difference of an "
                        "accuracy, and relative difference of a loss")


def find_record(out: Path, arch: str, seed: int, dataset: str | None) -> RunRecord:
    from ..storage import load_record, read_invocation

    invocation = read_invocation(out)
    records = [r for r in (load_record(out, run_id) for run_id in invocation.get("run_ids", [])) if r]
    chosen = [r for r in records if r.config.arch == arch and r.config.seed == seed
              and (dataset is None or r.config.dataset == dataset)]
    if not chosen:
        have = ", ".join(sorted({f"{r.config.arch} seed {r.config.seed}" for r in records})) or "none"
        raise BenchError(f"no finished run of {arch} seed {seed} in {out} (finished: {have})")
    if len(chosen) > 1:
        raise BenchError(f"{arch} seed {seed} ran on several datasets in {out}; pick one with --dataset")
    if chosen[0].status == STATUS_FAILED:
        raise BenchError(f"run {chosen[0].run_id} failed ({chosen[0].error}); there is nothing to verify")
    return chosen[0]


def exact_expected(cfg: RunConfig) -> bool:
    return cfg.device == "cpu" or cfg.deterministic


def compare(stored: RunRecord, epochs, test_loss: float, test_acc: float, exact: bool,
            tolerance: float) -> list[tuple[str, float, float, bool]]:
    """(metric, stored, retrained, matches) for every compared number."""
    pairs: list[tuple[str, float, float]] = []
    for i, (old, new) in enumerate(zip(stored.epochs, epochs), start=1):
        pairs += [(f"epoch {i} {m}", float(old[m]), float(new[m])) for m in EPOCH_METRICS]
    if len(stored.epochs) != len(epochs):
        pairs.append(("epochs run", float(len(stored.epochs)), float(len(epochs))))
    pairs += [("test_loss", float(stored.summary.get("test_loss", math.nan)), test_loss),
              ("test_acc", float(stored.summary.get("test_acc", math.nan)), test_acc)]
    rows = []
    for name, old, new in pairs:
        if exact or math.isnan(old) or math.isnan(new):
            same = old == new or (math.isnan(old) and math.isnan(new))
        elif name.endswith("_acc"):
            same = abs(old - new) <= tolerance
        else:
            same = math.isclose(old, new, rel_tol=tolerance, abs_tol=1e-12)
        rows.append((name, old, new, same))
    return rows


def main(args: argparse.Namespace, console: Console) -> int:
    from architectures import UnknownArchitectureError, get_spec

    from ..datasets.folder import FolderSource
    from ..datasets.prepared import prepare_data
    from ..determinism import deterministic_mode, prepare_environment
    from ..devices import resolve_device
    from ..storage import read_invocation
    from ..train import run_policy
    from ..user_networks import use_recorded

    out = Path(args.run_dir)
    if args.tolerance < 0:
        raise BenchError(f"--tolerance must be >= 0, got {args.tolerance}")
    stored = find_record(out, args.arch, args.seed, args.dataset)
    cfg = stored.config
    if cfg.deterministic:
        prepare_environment()
    resolve_device(cfg.device)  # a CUDA run on a machine without that GPU: one clear line
    invocation = read_invocation(out)
    use_recorded(invocation)  # the grid's networks from outside the zoo
    try:
        spec = get_spec(cfg.arch)
    except UnknownArchitectureError as exc:
        raise BenchError(str(exc)) from None
    if stored.arch.get("digest") and stored.arch["digest"] != spec.digest:
        raise BenchError(f"the code of {cfg.arch} ({spec.source_file}) changed since "
                         f"{stored.run_id} was trained; retraining it would test another network")
    info = invocation.get("datasets", {}).get(cfg.dataset, {})
    source = info.get("source")
    data_dir = args.data_dir or (source if source and Path(source).is_dir() else None)
    folders = {cfg.dataset: FolderSource(**info["folder"])} if info.get("folder") else {}
    dataset = load_dataset(cfg.dataset, DataSearch.from_cli(data_dir, download=False, folders=folders))
    exact = exact_expected(cfg)
    console.print(f"retraining {stored.run_id} ({cfg.epochs} epochs on {cfg.device}); expecting "
                  + ("a bit-for-bit match" if exact else f"a match within {args.tolerance}"), soft_wrap=True)

    data = prepare_data(dataset, cfg.val_fraction, cfg.device)
    # The thread count every executor trains with (CPU reductions' last bits depend on it).
    with run_policy(cfg).threads(), deterministic_mode(cfg.deterministic):
        outcome = retrain(stored, data, console)
    if outcome.status != stored.status:
        console.print(f"[red]MISMATCH[/]: the run ended {outcome.status}, the stored one {stored.status}")
        return EXIT_MISMATCH
    rows = compare(stored, outcome.epochs,
                   outcome.test.loss if outcome.test else math.nan,
                   outcome.test.accuracy if outcome.test else math.nan, exact, args.tolerance)
    weights_same = _weights_match(out, stored, outcome.state_dict, exact)
    bad = [r for r in rows if not r[3]]
    for name, old, new, _ in bad:
        console.print(f"  {name}: stored {old!r}, retrained {new!r} (diff {new - old:+.3g})", soft_wrap=True)
    if weights_same is False:
        console.print("  weights differ from the stored weights.pt")
    if bad or weights_same is False:
        console.print(f"[red]MISMATCH[/]: {len(bad)} of {len(rows)} metrics differ for {stored.run_id}",
                      soft_wrap=True)
        return EXIT_MISMATCH
    how = "bit for bit" if exact else f"within tolerance {args.tolerance}"
    console.print(f"MATCH: all {len(rows)} metrics"
                  + (" and the weights" if weights_same else "") + f" of {stored.run_id} reproduce {how}",
                  soft_wrap=True)
    return 0


def retrain(stored: RunRecord, data, console: Console):
    """Train the stored run again as it was trained: alone, or in its stack (whose seeds fix its bits)."""
    from ..train import train_run

    cfg = stored.config
    if not cfg.stacked:
        return train_run(cfg, data)
    from ..drivers.stacked_training import train_stack

    seeds = [int(s) for s in str(stored.summary.get("stacked_with") or cfg.seed).split(",")]
    if len(seeds) > 1:
        console.print(f"it trained stacked with seeds {', '.join(map(str, seeds))}: retraining that stack",
                      soft_wrap=True)
    outcomes = train_stack([cfg.replace(seed=s) for s in seeds], data)
    return outcomes[seeds.index(cfg.seed)]


def _weights_match(out: Path, stored: RunRecord, new: dict[str, torch.Tensor] | None,
                   exact: bool) -> bool | None:
    """Whether retrained weights equal the stored ones bit for bit; None when not compared.

    Weights are compared only where a bit-for-bit match is expected: under a tolerance,
    the metrics are the claim, and weight drift has no meaningful common scale.
    """
    import torch

    from ..storage import load_weights

    if new is None or not exact:
        return None
    try:
        old = load_weights(out, stored.run_id)
    except BenchError:
        return None
    return old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)

"""``python -m bench list``: the registered architectures and what they cost."""

from __future__ import annotations

import argparse

from typing import TYPE_CHECKING

from ..errors import BenchError

if TYPE_CHECKING:
    from rich.console import Console

NAME = "list"
DESCRIPTION = "List the registered architectures: family, tags, parameters, training FLOPs per image."


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("selector", nargs="?", default=None,
                   help="only these: names, globs (ablate-*) or tags (tag:ablation); default all")
    p.add_argument("--archs-from", action="append", default=None, metavar="PATH.py|MODULE",
                   help="also list the networks a file or dotted module registers (repeatable)")


def architecture_rows(names: list[str]) -> list[dict[str, object]]:
    from architectures import get_spec

    from ..flops import arch_cost

    rows = []
    for name in names:
        spec = get_spec(name)
        params, flops = arch_cost(name)
        rows.append({
            "name": name, "family": spec.family, "tags": ",".join(sorted(spec.tags)),
            "params": params, "train_mflops": flops / 1e6, "description": spec.description,
        })
    return rows


def main(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from architectures import UnknownArchitectureError, list_models, resolve

    from ..network_check import check_networks
    from ..user_networks import use_from_command_line

    use_from_command_line(args.archs_from)
    try:
        names = resolve(args.selector) if args.selector else list_models()
    except UnknownArchitectureError as exc:
        raise BenchError(str(exc)) from None
    check_networks(names, [(1, 28, 10)])  # the shape the table's costs are counted for
    table = Table(title="cnnbench architectures (28x28x1 input, 10 classes)", title_justify="left")
    table.add_column("name", style="bold")
    table.add_column("family")
    table.add_column("tags")
    table.add_column("params", justify="right")
    table.add_column("train MFLOP/img", justify="right")
    table.add_column("description")
    for row in architecture_rows(names):
        table.add_row(row["name"], row["family"], row["tags"], f"{row['params']:,}",
                      f"{row['train_mflops']:.2f}", row["description"])
    if not console.is_terminal:
        console.width = max(console.width, 200)  # a pipe gets the whole table, unwrapped
    console.print(table)
    return 0

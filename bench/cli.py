"""``python -m bench``: the command line.

With no command (or options only) it runs a benchmark grid; ``list``, ``report``,
``predict`` and the rest are sub-commands, one module each under ``bench/commands``.
Every user error ends as one ``error: ...`` line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

from .errors import BenchError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus a hint), not a usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse's signature
        sys.stderr.write(f"error: {message} (see: python -m bench {self._command()}--help)\n")
        raise SystemExit(EXIT_USAGE)

    def _command(self) -> str:
        parts = self.prog.split()
        return " ".join(parts[3:]) + " " if len(parts) > 3 else ""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown in help, and descriptions/epilogs kept as written.

    Options whose default is None or False, or whose help already says "(default", say
    their default in their own words.
    """

    def _get_help_string(self, action):
        if action.default in (None, False) or "(default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _commands():
    from .commands import export, listing, perf, predict, report, run, verify

    return {m.NAME: m for m in (run, listing, report, predict, verify, perf, export)}


def build_parser(command: str) -> argparse.ArgumentParser:
    module = _commands()[command]
    prog = "python -m bench" if command == "run" else f"python -m bench {command}"
    parser = Parser(
        prog=prog,
        description=module.DESCRIPTION,
        formatter_class=_Formatter,
        epilog=_epilog() if command == "run" else None,
    )
    module.configure(parser)
    return parser


def _epilog() -> str:
    others = [f"  {name:<8} {m.DESCRIPTION.splitlines()[0]}" for name, m in _commands().items() if name != "run"]
    return "other commands (python -m bench COMMAND --help):\n" + "\n".join(others)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    command = argv[0] if argv and argv[0] in commands else "run"
    if argv and argv[0] == command:
        argv = argv[1:]
    parser = build_parser(command)
    args = parser.parse_args(argv)
    args.argv = argv
    console = Console(stderr=False, highlight=False)
    try:
        return int(commands[command].main(args, console) or 0)
    except BenchError as exc:
        Console(stderr=True, highlight=False).print(f"error: {exc}", markup=False, soft_wrap=True)
        return getattr(exc, "exit_code", EXIT_USAGE)
    except KeyboardInterrupt:
        # Ctrl-C outside a grid (loading data, rendering): nothing half-written is left
        # (writes are atomic), so one line is all the user needs.
        Console(stderr=True, highlight=False).print("interrupted", markup=False)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

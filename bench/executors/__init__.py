"""Executors run a grid's tasks somewhere and hand back records as runs finish.

``local`` (this process, or worker processes on this machine) is built in; ``ray`` lives
in its own module and imports Ray only when chosen.  Importing this package is cheap: the
executors (and torch) load when one is made.
"""

from __future__ import annotations

from ..errors import BenchError

EXECUTORS = ("local", "ray")
# Times a run is tried again when the process training it dies (--retries; both executors).
# A one-off kill is covered twice over; a run the OOM killer kills every time costs 3 attempts.
DEFAULT_RETRIES = 2
# Command-line flag -> make_executor option, for the options only the ray executor takes.
RAY_OPTIONS = {"--ray-address": "ray_address", "--gpus-per-run": "gpus_per_run"}


def make_executor(name: str, **options):
    device = options.get("device", "cpu")
    if name == "local":
        given = [flag for flag, key in RAY_OPTIONS.items() if options.get(key) is not None]
        if given:
            raise BenchError(f"{', '.join(given)} only used with --executor ray")
        from .local import LocalExecutor

        return LocalExecutor(workers=options.get("workers"), device=device,
                             seeds_together=options.get("seeds_together"), retries=options.get("retries"),
                             stack_seeds=options.get("stack_seeds") or 1)
    if name == "ray":
        if options.get("seeds_together") is not None:
            raise BenchError("--seeds-together only used with --executor local")
        if (options.get("stack_seeds") or 1) > 1:
            raise BenchError("--stack-seeds only used with --executor local")
        from .ray_executor import RayExecutor  # imports Ray only when chosen

        return RayExecutor(address=options.get("ray_address"), device=device,
                           gpus_per_run=options.get("gpus_per_run"), retries=options.get("retries"),
                           num_cpus=options.get("workers"))
    raise BenchError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")


def __getattr__(name: str):
    if name == "LocalExecutor":
        from .local import LocalExecutor

        return LocalExecutor
    if name in ("Executor", "EpochEvent", "NoteEvent"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DEFAULT_RETRIES", "EXECUTORS", "EpochEvent", "Executor", "LocalExecutor", "NoteEvent", "make_executor"]

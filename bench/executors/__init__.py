"""Executors run a grid's tasks somewhere and hand back records as runs finish.

``local`` (this process, or worker processes on this machine) is built in; ``ray`` lives
in its own module and imports Ray only when chosen.
"""

from __future__ import annotations

from .base import EpochEvent, Executor
from .local import LocalExecutor

EXECUTORS = ("local", "ray")


def make_executor(name: str, **options) -> Executor:
    if name == "local":
        return LocalExecutor(workers=options.get("workers"), device=options.get("device", "cpu"))
    if name == "ray":
        from .ray_executor import RayExecutor  # optional dependency

        return RayExecutor(**options)
    from ..errors import BenchError

    raise BenchError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "EpochEvent", "Executor", "LocalExecutor", "make_executor"]

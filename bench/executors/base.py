"""The executor interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from ..config import RunConfig
from ..records import RunRecord
from ..tasks import RunTask

if TYPE_CHECKING:
    from ..planner import Plan

EpochEvent = Callable[[RunConfig, dict[str, float]], None]
# One line for the console (a worker died, runs are queued, ...); it may come from another
# thread of the driver than the one iterating the records, so it must be thread-safe.
NoteEvent = Callable[[str], None]


class Executor(ABC):
    """Runs tasks and yields each task's record as soon as it finishes (any order)."""

    name: str = "executor"
    # Whether the processes that train see the driver's output folder (they write checkpoints there).
    sees_output_dir: bool = True

    @abstractmethod
    def run(self, tasks: Sequence[RunTask], on_epoch: EpochEvent | None = None,
            on_note: NoteEvent | None = None, plan: Plan | None = None) -> Iterator[RunRecord]:
        """Yield one record per task.  Closing the iterator early cancels what is left.

        ``plan``: which runs train together (``bench.planner``); None: every run alone."""

    def describe(self) -> dict[str, object]:
        """What to record in config.json about how the grid was executed."""
        return {"executor": self.name}

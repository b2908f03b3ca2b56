"""``--deterministic``: deterministic kernels for one run, and which ops had none.

``torch.use_deterministic_algorithms(True)`` makes an op without a deterministic kernel
(e.g. average-pool backward on CUDA) raise, killing the run after it may have trained for
hours.  We turn the mode on with ``warn_only=True`` instead and collect the ops it warns
about: every op that has a deterministic kernel uses it (exactly as in strict mode), and
the run finishes and names the ops that did not, in its record's ``nondeterministic_ops``
(a run that names none is reproducible bit for bit; ``python -m bench verify`` checks).
Choosing "warn and record" over "fail with the op named" keeps the result of a long run
whose only nondeterminism is one known op; the record says exactly how far to trust it.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch

CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"
# cuBLAS needs a fixed workspace to be deterministic (CUDA >= 10.2); it reads this when a
# process creates its first cuBLAS handle, so it is set before any CUDA work starts.
CUBLAS_VALUE = ":4096:8"
_OP = re.compile(r"^(\S+) does not have a deterministic implementation")


def prepare_environment() -> None:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` (unless the user chose a value); call before CUDA work.

    Worker processes inherit it, as they are started after the driver calls this.
    """
    os.environ.setdefault(CUBLAS_ENV, CUBLAS_VALUE)


def nondeterministic_op(message: str) -> str | None:
    """The op named by torch's "... does not have a deterministic implementation" message."""
    match = _OP.match(str(message).strip())
    return match.group(1) if match else None


@contextmanager
def deterministic_mode(enabled: bool) -> Iterator[set[str]]:
    """Within the block (if ``enabled``), use deterministic kernels; yields the ops that had none.

    Restores the previous global mode afterwards, so one deterministic run in a process
    does not change the next, non-deterministic one.
    """
    found: set[str] = set()
    if not enabled:
        yield found
        return
    prepare_environment()
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # every op, not only the first warning's
        shown = warnings.showwarning

        def collect(message, category, filename, lineno, file=None, line=None):
            op = nondeterministic_op(message)
            if op is not None:
                found.add(op)  # one name per op, however many steps warned
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = collect
        try:
            yield found
        finally:
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])

"""Microbenchmarks (pytest-benchmark): not part of the test suite.

The default run collects ``tests/`` only (``testpaths``).  Run these explicitly:

    python -m pytest benchmarks/ --benchmark-autosave        # saves under .benchmarks/
    python -m pytest benchmarks/ --benchmark-compare         # against the last saved run

Files here are named ``bench_*.py``; this hook collects them (pytest's own
``python_files`` pattern only matches ``test_*.py``), without widening that pattern for
the test suite.
"""

from __future__ import annotations

import pytest


def pytest_collect_file(file_path, parent):
    # A file named on the command line is collected by pytest itself, whatever its name:
    # collecting it here too would run every benchmark twice.
    if parent.session.isinitpath(file_path):
        return None
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None

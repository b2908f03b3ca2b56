"""The statistics package stays light (no torch, no plotting) and documents every number."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from bench.stats import METHODS

PACKAGE = Path(__file__).resolve().parent.parent / "bench" / "stats"
ALLOWED = {"numpy", "scipy", "pandas", "statsmodels", "bench"} | set(sys.stdlib_module_names)


def test_imports_only_numpy_scipy_pandas_statsmodels_and_bench_errors():
    seen = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                seen |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                seen.add(node.module)
    assert {name.split(".")[0] for name in seen} <= ALLOWED
    assert {name for name in seen if name.startswith("bench")} <= (
        {"bench.errors"} | {f"bench.stats.{p.stem}" for p in PACKAGE.glob("*.py")} | {"bench.stats"})
    assert "statsmodels.stats.contingency_tables" in seen


def test_methods_name_the_function_behind_each_number():
    expected = {"estimate", "standard_error", "difference_test", "equivalence_test", "zero_spread",
                "multiplicity", "verdict", "minimum_detectable_effect", "seeds_needed", "sequential",
                "accuracy_interval", "win_counts", "time_to_target"}
    assert set(METHODS) == expected
    for key in ("difference_test", "equivalence_test", "minimum_detectable_effect", "seeds_needed",
                "sequential"):
        assert "scipy.stats." in METHODS[key] or "statsmodels." in METHODS[key], key
    assert "statsmodels.stats.contingency_tables.mcnemar" in METHODS["difference_test"]
    assert "ttost_paired" in METHODS["equivalence_test"]

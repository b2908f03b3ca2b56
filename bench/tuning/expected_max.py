"""Expected best validation accuracy of n tuning trials (Dodge et al. 2019, "Show Your Work").

From the N trials' values, the best of n draws (with replacement) from their empirical
distribution has P(max <= v_(i)) = (i/N)^n over the sorted values, so its mean and spread
follow exactly; no sampling is involved.
"""

from __future__ import annotations

import numpy as np


def _weights(n_trials: int, n: int) -> np.ndarray:
    i = np.arange(1, n_trials + 1, dtype=float)
    return (i / n_trials) ** n - ((i - 1) / n_trials) ** n


def expected_max(values, n: int) -> float:
    """E[max of n draws from ``values``] = sum_i v_(i) ((i/N)^n - ((i-1)/N)^n); NaN dropped."""
    v = np.sort(np.asarray(values, dtype=float)[~np.isnan(np.asarray(values, dtype=float))])
    if not len(v):
        return float("nan")
    return float(np.dot(v, _weights(len(v), n)))


def expected_max_sd(values, n: int) -> float:
    """The standard deviation of that maximum (Dodge et al.'s band: mean +- this)."""
    v = np.sort(np.asarray(values, dtype=float)[~np.isnan(np.asarray(values, dtype=float))])
    if not len(v):
        return float("nan")
    w = _weights(len(v), n)
    mean = np.dot(v, w)
    return float(np.sqrt(max(np.dot(v * v, w) - mean * mean, 0.0)))


def expected_max_curve(values, up_to: int | None = None) -> list[dict[str, float]]:
    """Per budget n = 1..``up_to`` (default: the number of values): the expected best and its
    band, mean +- one standard deviation clipped to the values' range."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    rows = []
    for n in range(1, (up_to or len(v)) + 1):
        mean, sd = expected_max(v, n), expected_max_sd(v, n)
        rows.append({"trials": n, "expected": mean,
                     "low": max(mean - sd, float(v.min())), "high": min(mean + sd, float(v.max()))})
    return rows

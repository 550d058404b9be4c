"""Paired per-seed tests: the t-interval, the paired t-test's p and Holm's adjustment.

Pure numbers on arrays, so the verdict's words can be checked against hand computations.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

ALPHA = 0.05
MIN_SEEDS_FOR_WORDS = 3  # two paired seeds give a t-interval on one degree of freedom


def t_interval(
    values: np.ndarray | list[float], level: float = 1 - ALPHA
) -> tuple[float, float, float]:
    """Mean and the t-interval of the mean at `level`; (mean, NaN, NaN) with fewer than two
    values.

    >>> [round(x, 4) for x in t_interval([1.0, 2.0, 3.0])]
    [2.0, -0.4841, 4.4841]
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    return interval_from(mean, float(v.std(ddof=1)), len(v), level)


def interval_from(mean: float, sd: float, n: int, level: float) -> tuple[float, float, float]:
    """The t-interval of a mean at `level` from its sample sd and count (n >= 2)."""
    half = float(stats.t.ppf(1 - (1 - level) / 2, n - 1) * sd / math.sqrt(n))
    return mean, mean - half, mean + half


def paired_p(d: np.ndarray | list[float]) -> float:
    """Two-sided p of the paired t-test of mean d = 0; NaN below two pairs or at zero
    variance (where the t statistic is undefined, not infinitely significant).

    >>> round(paired_p([-0.06, -0.03, -0.06]), 4)
    0.0377
    """
    d = np.asarray(d, dtype=np.float64)
    if len(d) < 2 or not np.all(np.isfinite(d)):
        return math.nan
    sd = float(d.std(ddof=1))
    if sd <= 1e-12 * max(1.0, float(np.abs(d).max())):  # equal up to rounding
        return math.nan
    t = float(d.mean()) / (sd / math.sqrt(len(d)))
    return float(2 * stats.t.sf(abs(t), len(d) - 1))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate), in the order given; NaN
    entries are no test and do not count.

    >>> [round(x, 4) for x in holm([0.01, 0.04, 0.03, 0.005])]
    [0.03, 0.06, 0.06, 0.02]
    """
    real = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    m = len(real)
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(real, key=lambda j: p_values[j])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out

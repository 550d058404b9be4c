"""Long-tail profiles: exact per-class counts as pure functions.

Counts are given in *rank* order (rank 0 = the class that keeps the most images); the caller
maps ranks to classes by the configured class order.
"""

from __future__ import annotations

import numpy as np


def shape_weights(
    profile: str,
    num_classes: int,
    level: float,
    *,
    pareto_alpha: float = 6.0,
    natural_counts: np.ndarray | None = None,
) -> np.ndarray:
    """Relative class sizes in rank order, the largest equal to 1.

    `level` is the imbalance ratio r = n_min / n_max for exp/step/pareto and the exponent a
    for power/natural (n_i proportional to natural_i ** a; a=0 balanced, a=1 natural).
    """
    c = num_classes
    ranks = np.arange(c, dtype=np.float64)
    if profile == "exp":
        return level ** (ranks / max(c - 1, 1))
    if profile == "step":
        return np.where(ranks < c // 2 if c > 1 else ranks < 1, 1.0, level)
    if profile == "pareto":
        # Pareto density x^-(alpha+1) sampled at evenly spaced x in [1, x_max], x_max set so the
        # smallest class is exactly `level` times the largest.
        x_max = level ** (-1.0 / (pareto_alpha + 1.0))
        x = 1.0 + ranks / max(c - 1, 1) * (x_max - 1.0)
        return x ** -(pareto_alpha + 1.0)
    if profile in ("power", "natural"):
        if natural_counts is None:
            raise ValueError("power profile needs natural_counts")
        nat = np.sort(np.asarray(natural_counts, dtype=np.float64))[::-1]
        w = nat**level
        return w / w.max()
    raise ValueError(f"unknown profile {profile!r}")


def counts_from_n_max(weights: np.ndarray, n_max: int) -> np.ndarray:
    """int(n_max * w_i), as in Cui et al. 2019 (CIFAR-10 exp r=0.01 from 5,000: 12,406 images)."""
    return np.floor(n_max * np.asarray(weights) + 1e-9).astype(np.int64)


def allocate(weights: np.ndarray, total: int) -> np.ndarray:
    """Integer counts proportional to `weights` summing exactly to `total` (largest remainder;
    ties go to the lower rank, so the result is deterministic)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = total * w / w.sum()
    counts = np.floor(exact + 1e-9).astype(np.int64)
    short = int(total - counts.sum())
    if short > 0:
        order = np.lexsort((np.arange(len(w)), -(exact - counts)))
        counts[order[:short]] += 1
    return counts


def imbalance_ratio(counts: np.ndarray) -> float:
    counts = np.asarray(counts)
    return float(counts.min() / counts.max()) if counts.max() > 0 else 0.0


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of class sizes: 0 balanced, towards 1 as one class holds everything."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum / cum[-1]).sum()) / n)

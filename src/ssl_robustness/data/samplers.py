"""Epoch samplers as pure functions of labels and a seeded generator.

class-balanced and square-root sampling give each class an *exact* number of draws per epoch
(largest-remainder allocation of p_c proportional to n_c ** q), so their counts are testable.
"""

from __future__ import annotations

import numpy as np

from .subsets.profiles import allocate

SAMPLER_POWER = {"instance": 1.0, "sqrt": 0.5, "class_balanced": 0.0}


def class_draws(counts: np.ndarray, kind: str, total: int | None = None) -> np.ndarray:
    """Draws per class in one epoch of `total` samples (default: the dataset size)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = int(counts.sum()) if total is None else total
    weights = np.where(counts > 0, counts ** SAMPLER_POWER[kind], 0.0)
    return allocate(weights, total)


def epoch_order(
    labels: np.ndarray, kind: str, rng: np.random.Generator, num_classes: int | None = None
) -> np.ndarray:
    """Positions into `labels` for one epoch, shuffled; with replacement for non-instance kinds."""
    n = len(labels)
    if kind == "instance":
        return rng.permutation(n)
    c = num_classes or int(labels.max()) + 1
    draws = class_draws(np.bincount(labels, minlength=c), kind, n)
    parts = []
    for k in range(c):
        members = np.flatnonzero(labels == k)
        if draws[k] == 0:
            continue
        reps = -(-int(draws[k]) // len(members))
        cycle = np.concatenate([rng.permutation(members) for _ in range(reps)])
        parts.append(cycle[: draws[k]])
    return rng.permutation(np.concatenate(parts))

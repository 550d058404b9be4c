"""Frequency tiers (head / medium / tail) of the classes, from their training counts.

"Tier" is this word alone: a data.group_by *group* is images that belong together, a duplicate
*set* is copies of one image. OLTR's thresholds (many > 100, medium 20..100, few < 20) where
they leave no tier empty; otherwise, or when asked, frequency thirds of the classes sorted by
count (SDCLR, BCL).
"""

from __future__ import annotations

import numpy as np

TIER_NAMES = ("head", "medium", "tail")


def oltr_tiers(counts: np.ndarray, many_above: int = 100, few_below: int = 20) -> np.ndarray:
    counts = np.asarray(counts)
    return np.where(counts > many_above, "head", np.where(counts < few_below, "tail", "medium"))


def thirds_tiers(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts)
    order = np.lexsort((np.arange(len(counts)), -counts))
    out = np.empty(len(counts), dtype=object)
    for name, members in zip(TIER_NAMES, np.array_split(order, 3), strict=True):
        out[members] = name
    return out.astype(str)


def assign_tiers(
    counts: np.ndarray, rule: str = "auto", many_above: int = 100, few_below: int = 20
) -> tuple[str, np.ndarray]:
    """(rule used, tier name per class)."""
    if rule in ("oltr", "auto"):
        tiers = oltr_tiers(counts, many_above, few_below)
        if rule == "oltr" or all((tiers == t).any() for t in TIER_NAMES):
            return "oltr", tiers
    return "thirds", thirds_tiers(counts)

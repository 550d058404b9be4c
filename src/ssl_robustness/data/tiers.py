"""head / medium / tail groups from training counts.

OLTR's thresholds (many > 100, medium 20..100, few < 20) where they leave no group empty;
otherwise, or when asked, frequency thirds of the classes sorted by count (SDCLR, BCL).
"""

from __future__ import annotations

import numpy as np

GROUP_NAMES = ("head", "medium", "tail")


def oltr_groups(counts: np.ndarray, many_above: int = 100, few_below: int = 20) -> np.ndarray:
    counts = np.asarray(counts)
    return np.where(counts > many_above, "head", np.where(counts < few_below, "tail", "medium"))


def thirds_groups(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts)
    order = np.lexsort((np.arange(len(counts)), -counts))
    out = np.empty(len(counts), dtype=object)
    for name, members in zip(GROUP_NAMES, np.array_split(order, 3), strict=True):
        out[members] = name
    return out.astype(str)


def assign_groups(
    counts: np.ndarray, rule: str = "auto", many_above: int = 100, few_below: int = 20
) -> tuple[str, np.ndarray]:
    """(rule used, group name per class)."""
    if rule in ("oltr", "auto"):
        groups = oltr_groups(counts, many_above, few_below)
        if rule == "oltr" or all((groups == g).any() for g in GROUP_NAMES):
            return "oltr", groups
    return "thirds", thirds_groups(counts)

"""How many test images share a `data.group_by` group with what the models learn from.

A test frame whose video track is also in the pool is half-seen: the per-image "probe overlap:
0" says nothing about it. With `group_by` keeping groups together every count here is 0; with
`keep_together: false` it measures the leak of a per-image split.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def shared_with_test(groups: np.ndarray, test: np.ndarray, other: np.ndarray) -> int:
    """Test images (indices `test`) whose group also holds an image of `other`."""
    if len(test) == 0 or len(other) == 0:
        return 0
    return int(np.isin(groups[test], np.unique(groups[other])).sum())


def group_counts(groups: np.ndarray, sets: dict[str, np.ndarray]) -> dict[str, int]:
    """Distinct groups in each named index set."""
    return {name: int(len(np.unique(groups[idx]))) for name, idx in sets.items()}


def leakage(
    groups: np.ndarray,
    test: np.ndarray,
    pool: np.ndarray,
    probe: np.ndarray,
    subsets: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Test images sharing a group with the train pool, the probe set and each subset."""
    return {
        "test_images": int(len(test)),
        "pool": shared_with_test(groups, test, pool),
        "probe": shared_with_test(groups, test, probe),
        "subsets": {name: shared_with_test(groups, test, idx) for name, idx in subsets.items()},
    }


def leakage_line(leak: dict[str, Any] | None, seed: int) -> str:
    """The one line `data stats` and the report print."""
    if leak is None:
        return (
            "leakage: not measured (data.group_by not set): test images from the same video "
            "track, plant, animal or patient as pool images would go unseen"
        )
    subsets = ", ".join(f"{name} {n}" for name, n in leak["subsets"].items())
    return (
        f"leakage: of {leak['test_images']} test images, {leak['pool']} share a data.group_by "
        f"group with the train pool, {leak['probe']} with the probe set; with the subsets of "
        f"seed {seed}: {subsets}"
    )

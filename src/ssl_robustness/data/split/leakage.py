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
    val: np.ndarray | None = None,
) -> dict[str, Any]:
    """Test images (and, under "val", val images: model selection leaks too) sharing a group
    with the train pool, the probe set and each subset."""

    def against(held: np.ndarray) -> dict[str, Any]:
        return {
            "pool": shared_with_test(groups, held, pool),
            "probe": shared_with_test(groups, held, probe),
            "subsets": {name: shared_with_test(groups, held, idx) for name, idx in subsets.items()},
        }

    out: dict[str, Any] = {"test_images": int(len(test)), **against(test)}
    if val is not None and len(val):  # val on a test track: selection on the test set
        out["val"] = {
            "images": int(len(val)),
            "test": shared_with_test(groups, val, test),
            **against(val),
        }
    return out


GROUPS_PER_TEST_CLASS = 5  # fewer: a class's test accuracy is a few tracks, not the class


def groups_per_class(
    groups: np.ndarray, labels: np.ndarray, num_classes: int, sets: dict[str, np.ndarray]
) -> dict[str, list[int]]:
    """Per named index set, the distinct groups of each class."""
    return {
        name: [len(np.unique(groups[idx[labels[idx] == c]])) for c in range(num_classes)]
        for name, idx in sets.items()
    }


def few_group_lines(per_class: dict[str, list[int]], class_names: list[str]) -> list[str]:
    """The classes whose test set holds fewer than GROUPS_PER_TEST_CLASS groups, and a summary
    of every split's groups per class."""
    lines = []
    for name, counts in per_class.items():
        if any(counts):
            lines.append(
                f"  {name}: {min(counts)}..{max(counts)} groups per class "
                f"(median {int(np.median(counts))})"
            )
    test = per_class.get("test", [])
    few = [(class_names[c], n) for c, n in enumerate(test) if n < GROUPS_PER_TEST_CLASS]
    for name, n in few[:10]:
        lines.append(
            f"  class '{name}': its test accuracy is {n} data.group_by group{'s' * (n != 1)} "
            f"(tracks, plants, animals), fewer than {GROUPS_PER_TEST_CLASS}: it measures those, "
            "not the class"
        )
    if len(few) > 10:
        lines.append(f"  ... and {len(few) - 10} more classes with fewer than 5 test groups")
    return lines


def leakage_line(leak: dict[str, Any] | None, seed: int) -> str:
    """The one line `data stats` and the report print."""
    if leak is None:
        return (
            "leakage: not measured (data.group_by not set): test images from the same video "
            "track, plant, animal or patient as pool images would go unseen"
        )
    subsets = ", ".join(f"{name} {n}" for name, n in leak["subsets"].items())
    line = (
        f"leakage: of {leak['test_images']} test images, {leak['pool']} share a data.group_by "
        f"group with the train pool, {leak['probe']} with the probe set; with the subsets of "
        f"seed {seed}: {subsets}"
    )
    val = leak.get("val")
    if val:
        vsub = ", ".join(f"{name} {n}" for name, n in val["subsets"].items())
        line += (
            f"; of {val['images']} val images, {val.get('test', 0)} with the test set, "
            f"{val['pool']} with the pool, {val['probe']} with the probe set, subsets: {vsub}"
        )
    return line

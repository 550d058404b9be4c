"""Manifests (one CSV row per item of a split or subset) and their stats."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ...atomic import write_text
from ..subsets.profiles import gini, imbalance_ratio

MANIFEST_COLUMNS = ("item", "label", "class_name", "split", "subset")


def write_manifest(
    path: Path,
    items: list[str],
    labels: np.ndarray,
    class_names: list[str],
    split: str,
    subset: str,
) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for item, label in zip(items, labels, strict=True):
        writer.writerow((item, int(label), class_names[int(label)], split, subset))
    write_text(path, buf.getvalue())


def read_manifest(path: Path) -> list[dict[str, str | int]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["label"] = int(row["label"])  # type: ignore[assignment]
    return rows  # type: ignore[return-value]


def count_stats(counts: np.ndarray) -> dict[str, float | int | list[int]]:
    counts = np.asarray(counts)
    return {
        "n": int(counts.sum()),
        "per_class": [int(x) for x in counts],
        "min": int(counts.min()),
        "max": int(counts.max()),
        "imbalance_ratio": imbalance_ratio(counts),
        "gini": gini(counts),
    }

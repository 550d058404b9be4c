"""The one shape every data source produces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class LabelledSet:
    """Items with integer labels and class names.

    `items` are paths relative to `root` for file sources, or stable ids for in-memory
    sources, whose decoded pixels are in `pixels` (N, H, W, 3 uint8). `official_split`
    holds 'train' / 'val' / 'test' per item where the source defines splits.
    """

    items: list[str]
    labels: np.ndarray
    class_names: list[str]
    root: Path | None = None
    pixels: np.ndarray | None = None
    official_split: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.items) != len(self.labels):
            raise ValueError("items and labels differ in length")
        if self.official_split is not None:
            self.official_split = np.asarray(self.official_split, dtype=object)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def take(self, idx: np.ndarray) -> LabelledSet:
        """The items at `idx` (in that order) with their labels, pixels and official splits;
        the class names unchanged."""
        return LabelledSet(
            [self.items[i] for i in idx],
            self.labels[idx],
            self.class_names,
            self.root,
            None if self.pixels is None else self.pixels[idx],
            None if self.official_split is None else self.official_split[idx],
        )

    def class_counts(self, mask: np.ndarray | None = None) -> np.ndarray:
        labels = self.labels if mask is None else self.labels[mask]
        return np.bincount(labels, minlength=self.num_classes)

"""Train pool / val / test: official splits where the source has them, else a seeded
stratified split whose val and test sets are balanced per class."""

from __future__ import annotations

import numpy as np

from ..config import SplitConfig
from ..errors import UserError
from .labelled import LabelledSet


def make_splits(
    lset: LabelledSet, cfg: SplitConfig, class_ids: np.ndarray | None = None
) -> np.ndarray:
    """Split name ('train', 'val', 'test') of every item.

    `class_ids`: each class's index in the unfiltered listing (default: its label), which
    seeds its carve, so dropping another class with `data.classes` leaves its val/test as
    they were."""
    split = listed_splits(lset, cfg)
    need = carve_needs(split, cfg)
    if need:
        ids = np.arange(lset.num_classes) if class_ids is None else np.asarray(class_ids)
        _carve(lset, split, need, cfg.seed, ids)
    return split


def listed_splits(lset: LabelledSet, cfg: SplitConfig) -> np.ndarray:
    """Each item's split as the source lists it (official splits, else all 'train')."""
    n = len(lset)
    official = lset.official_split if cfg.use_official else None
    split = np.array(official if official is not None else ["train"] * n, dtype=object)
    split[split == ""] = "train"
    return split


def carve_needs(split: np.ndarray, cfg: SplitConfig) -> list[tuple[str, int]]:
    """The splits carved out of each class's listed training images, with their sizes."""
    need = []
    if not (split == "test").any():
        need.append(("test", cfg.test_per_class))
    if not (split == "val").any() and cfg.val_per_class > 0:
        need.append(("val", cfg.val_per_class))
    return need


def pool_counts_before_carving(lset: LabelledSet, cfg: SplitConfig) -> np.ndarray:
    """Per class, the train pool `make_splits` will leave (listed training images less the
    carved val/test), computed without carving: class filters apply before the carve."""
    split = listed_splits(lset, cfg)
    carved = sum(k for _, k in carve_needs(split, cfg))
    return np.maximum(lset.class_counts(split == "train") - carved, 0)


def _carve(
    lset: LabelledSet,
    split: np.ndarray,
    need: list[tuple[str, int]],
    seed: int,
    class_ids: np.ndarray,
) -> None:
    per_class_needed = sum(k for _, k in need)
    for c, name in enumerate(lset.class_names):
        members = np.flatnonzero((lset.labels == c) & (split == "train"))
        if len(members) < per_class_needed + 1:
            asks = " + ".join(f"{s}_per_class={k}" for s, k in need)
            raise UserError(
                f"data.split: class '{name}' has {len(members)} training images; the split "
                f"needs {asks} + at least 1 for training. Lower data.split.*_per_class"
            )
        order = np.random.default_rng([seed, int(class_ids[c])]).permutation(members)
        start = 0
        for s, k in need:
            split[order[start : start + k]] = s
            start += k

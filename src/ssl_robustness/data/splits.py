"""Train pool / val / test: official splits where the source has them, else a seeded
stratified split whose val and test sets are balanced per class."""

from __future__ import annotations

import numpy as np

from ..config import SplitConfig
from ..errors import UserError
from .labelled import LabelledSet
from .whole_groups import group_members, largest_at_most, reachable, take_whole_groups


def make_splits(
    lset: LabelledSet,
    cfg: SplitConfig,
    class_ids: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Split name ('train', 'val', 'test') of every item.

    `class_ids`: each class's index in the unfiltered listing (default: its label), which
    seeds its carve, so dropping another class with `data.classes` leaves its val/test as
    they were. `groups`: each item's group id (`data.group_by`); val and test are then carved
    in whole groups."""
    split = listed_splits(lset, cfg)
    need = carve_needs(split, cfg)
    if need:
        ids = np.arange(lset.num_classes) if class_ids is None else np.asarray(class_ids)
        if groups is None:
            _carve(lset, split, need, cfg.seed, ids)
        else:
            _carve_groups(lset, split, need, cfg.seed, ids, groups)
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


def _carve_groups(
    lset: LabelledSet,
    split: np.ndarray,
    need: list[tuple[str, int]],
    seed: int,
    class_ids: np.ndarray,
    groups: np.ndarray,
) -> None:
    """`_carve` in whole groups: each split takes exactly k images per class made of whole
    groups, and at least one group is left for training."""
    for step, (s, k) in enumerate(need):
        parts = [
            group_members(np.flatnonzero((lset.labels == c) & (split == "train")), groups)
            for c in range(lset.num_classes)
        ]
        for c, name in enumerate(lset.class_names):
            rng = np.random.default_rng([seed, int(class_ids[c]), 1 + step])
            chosen = take_whole_groups(parts[c], k, rng)
            left = sum(len(p) for p in parts[c]) - len(chosen)
            if len(chosen) == k and left >= 1:
                split[chosen] = s
                continue
            every = _largest_for_all(parts, k)
            own = largest_at_most(reachable([len(p) for p in parts[c]], k), k)
            sizes = sorted((len(p) for p in parts[c]), reverse=True)
            shown = ", ".join(map(str, sizes[:8])) + (" ..." if len(sizes) > 8 else "")
            why = (
                f"cannot give {s}_per_class={k} images in whole groups"
                if len(chosen) != k
                else f"would have no group left for training after {s}_per_class={k}"
            )
            raise UserError(
                f"data.split: class '{name}' {why} (its {len(parts[c])} data.group_by groups "
                f"hold {shown} images); the largest size it can give is {own}, the largest "
                f"every class can is {every}. Lower data.split.{s}_per_class"
            )


def _largest_for_all(parts: list[list[np.ndarray]], k: int) -> int:
    """The largest size <= k that every class can make of whole groups, leaving one group."""
    common = (1 << (k + 1)) - 1
    for class_parts in parts:
        total = sum(len(p) for p in class_parts)
        common &= reachable([len(p) for p in class_parts], min(k, total - 1)) if total else 1
    return largest_at_most(common, k)

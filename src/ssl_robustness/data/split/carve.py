"""Carving val and test out of each class's listed training images: image by image in a seeded
order, or in whole data.group_by groups. A class that cannot give a size is reported, with
what it can give (`CarveFault`), never carved short."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...config import SplitConfig
from ..listing.labelled import LabelledSet
from .whole_groups import group_members, largest_at_most, reachable, take_with_aside


def listed_splits(lset: LabelledSet, cfg: SplitConfig) -> np.ndarray:
    """Each item's split as the source lists it (official splits, else all 'train')."""
    n = len(lset)
    official = lset.official_split if cfg.use_official else None
    split = np.array(official if official is not None else ["train"] * n, dtype=object)
    split[split == ""] = "train"
    return split


def set_aside_listed_groups(split: np.ndarray, groups: np.ndarray) -> None:
    """Training images whose group also has a listed (official) val or test image: the listed
    split cannot move, so they go 'aside' (never trained on), and no group spans two splits."""
    held = np.isin(split, ("val", "test"))
    if held.any():
        split[(split == "train") & np.isin(groups, np.unique(groups[held]))] = "aside"


def split_before_carving(
    lset: LabelledSet, cfg: SplitConfig, groups: np.ndarray | None
) -> np.ndarray:
    """Each item's split as the carve starts from it: listed, and with groups the training
    images of a group a listed val/test split holds set aside. `make_splits` and every trial
    carve of the feasibility checks start here, so a proposal is checked on what will run."""
    split = listed_splits(lset, cfg)
    if groups is not None:
        set_aside_listed_groups(split, groups)
    return split


def carve_needs(split: np.ndarray, cfg: SplitConfig) -> list[tuple[str, int]]:
    """The splits carved out of each class's listed training images, with their sizes."""
    need = []
    if not (split == "test").any():
        need.append(("test", cfg.test_per_class))
    if not (split == "val").any() and cfg.val_per_class > 0:
        need.append(("val", cfg.val_per_class))
    return need


@dataclass(frozen=True)
class CarveFault:
    """A class that cannot give a carved split its size: what it can give instead."""

    class_name: str
    split: str
    asked: int
    can_give: int
    groups: int  # its groups (or images) left when the split was carved
    sizes: tuple[int, ...]  # their sizes, largest first (whole-group carving only)


def carve(
    lset: LabelledSet,
    split: np.ndarray,
    need: list[tuple[str, int]],
    seed: int,
    class_ids: np.ndarray,
    groups: np.ndarray | None,
    cap: int | None = None,
) -> list[CarveFault]:
    """Carve `need` out of each class's listed training images (into `split`, in place); the
    classes that cannot give it, every one of them (their images stay where they were)."""
    faults = []
    for c, name in enumerate(lset.class_names):
        members = np.flatnonzero((lset.labels == c) & (split == "train"))
        if groups is None:
            fault = _carve_images(members, split, need, seed, int(class_ids[c]), name)
        else:
            fault = _carve_groups(members, split, need, seed, int(class_ids[c]), name, groups, cap)
        if fault is not None:
            faults.append(fault)
    return faults


def _carve_images(
    members: np.ndarray,
    split: np.ndarray,
    need: list[tuple[str, int]],
    seed: int,
    class_id: int,
    name: str,
) -> CarveFault | None:
    """One class's carve image by image: a seeded order, each split a slice of it."""
    total = sum(k for _, k in need)
    if len(members) < total + 1:
        s, k = need[0]
        others = total - k
        return CarveFault(name, s, k, max(len(members) - 1 - others, 0), len(members), ())
    order = np.random.default_rng([seed, class_id]).permutation(members)
    start = 0
    for s, k in need:
        split[order[start : start + k]] = s
        start += k
    return None


def _carve_groups(
    members: np.ndarray,
    split: np.ndarray,
    need: list[tuple[str, int]],
    seed: int,
    class_id: int,
    name: str,
    groups: np.ndarray,
    cap: int | None,
) -> CarveFault | None:
    """One class's carve in whole groups: each split exactly k images of as many groups as
    possible, at least one group left for training; a capped group's other images go 'aside'
    (never trained on: they share a group with an evaluation image)."""
    marks: list[tuple[np.ndarray, str]] = []
    left = members
    for step, (s, k) in enumerate(need):
        parts = group_members(left, groups)
        rng = np.random.default_rng([seed, class_id, 1 + step])
        chosen, aside = take_with_aside(parts, k, rng, cap)
        rest = len(left) - len(chosen) - len(aside)
        if len(chosen) != k or rest < 1:
            return CarveFault(
                name,
                s,
                k,
                can_give(parts, k, cap),
                len(parts),
                tuple(sorted(map(len, parts))[::-1]),
            )
        marks += [(chosen, s), (aside, "aside")]
        left = np.setdiff1d(left, np.concatenate([chosen, aside]))
    for idx, s in marks:
        split[idx] = s
    return None


def can_give(parts: list[np.ndarray], k: int, cap: int | None) -> int:
    """The largest size <= k that whole groups (each at most `cap` images) make while leaving a
    group for training: any total short of all groups leaves one."""
    sizes = [len(p) if cap is None else min(len(p), cap) for p in parts]
    total = sum(sizes)
    if total < 2 and len(parts) < 2:
        return 0
    limit = min(k, total - 1)
    return max(largest_at_most(reachable(sizes, limit), limit), 0) if limit > 0 else 0

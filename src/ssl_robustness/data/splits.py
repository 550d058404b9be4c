"""Train pool / val / test: official splits where the source has them, else a seeded
stratified split whose val and test sets are balanced per class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import SplitConfig
from ..errors import UserError
from .labelled import LabelledSet
from .whole_groups import group_members, largest_at_most, reachable, take_with_aside


def make_splits(
    lset: LabelledSet,
    cfg: SplitConfig,
    class_ids: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    filter_counts: np.ndarray | None = None,
) -> np.ndarray:
    """Split name ('train', 'val', 'test') of every item.

    `class_ids`: each class's index in the unfiltered listing (default: its label), which
    seeds its carve, so dropping another class with `data.classes` leaves its val/test as
    they were. `groups`: each item's group id (`data.group_by`); val and test are then carved
    in whole groups, as many as the sizes allow ('aside': the rest of a group capped by
    data.split.max_per_group). A size some class cannot give names every such class;
    `filter_counts`: each class's count as data.classes.min_count sees it (the listing's, before
    bad images and duplicates leave), for the min_count it proposes."""
    split = listed_splits(lset, cfg)
    if groups is not None:
        set_aside_listed_groups(split, groups)
    need = carve_needs(split, cfg)
    if need:
        ids = np.arange(lset.num_classes) if class_ids is None else np.asarray(class_ids)
        faults = carve(lset, split, need, cfg.seed, ids, groups, cfg.max_per_group)
        if faults:
            raise infeasible_error(lset, cfg, need, faults, ids, groups, filter_counts)
    return split


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


class SplitInfeasible(UserError):
    """A carved size some classes cannot give; `classes` names them (so a later stage can add
    what it knows of their cause, such as the duplicates it left out)."""

    def __init__(self, message: str, classes: tuple[str, ...]) -> None:
        super().__init__(message)
        self.classes = classes


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


def infeasible_error(
    lset: LabelledSet,
    cfg: SplitConfig,
    need: list[tuple[str, int]],
    faults: list[CarveFault],
    class_ids: np.ndarray,
    groups: np.ndarray | None,
    filter_counts: np.ndarray | None = None,
) -> SplitInfeasible:
    """Every class at fault with what it can give, and the settings (checked by carving again)
    that work: a smaller split size every class can give, or the classes to leave out."""
    whole = " in whole data.group_by groups" if groups is not None else ""
    rows = []
    first = need[0]
    for f in faults:
        later = f.split != first[0]
        after = f" after {first[0]}_per_class={first[1]}" if later else ""
        held = (
            f"its {f.groups} groups{' left' * later} hold {_sizes(f.sizes)} images"
            if groups is not None
            else f"it has {f.groups} training images"
        )
        rows.append(
            f"  '{f.class_name}': can give {f.split}_per_class={f.can_give}{after} ({held})"
        )
    asks = " and ".join(f"{s}_per_class={k}" for s, k in need)
    lines = [
        f"data.split: {len(faults)} of {lset.num_classes} classes cannot give {asks}{whole} "
        "and keep at least one image for training:",
        *rows,
        "settings that work (each checked by carving again):",
    ]
    lines += _smaller_sizes(lset, cfg, need, class_ids, groups)
    lines += _fewer_classes(lset, cfg, faults, filter_counts)
    if groups is not None:
        lines.append(
            "  (a size is made of whole groups: exactly k images, so 20 may fail where 19 "
            "works; data.split.max_per_group lets a long group give only part of itself)"
        )
    return SplitInfeasible("\n".join(lines), tuple(f.class_name for f in faults))


def _sizes(sizes: tuple[int, ...]) -> str:
    return ", ".join(map(str, sizes[:8])) + (" ..." if len(sizes) > 8 else "")


def _smaller_sizes(
    lset: LabelledSet,
    cfg: SplitConfig,
    need: list[tuple[str, int]],
    class_ids: np.ndarray,
    groups: np.ndarray | None,
) -> list[str]:
    """Smaller sizes that every class can give, each found by carving: one split's largest with
    the other as asked, else the largest pair; with groups, the asked sizes with
    data.split.max_per_group: 1 (every group then gives one image)."""

    def works(sizes: list[int], cap: int | None = cfg.max_per_group) -> bool:
        trial = [(s, k) for (s, _), k in zip(need, sizes, strict=True)]
        split = listed_splits(lset, cfg)
        return not carve(lset, split, trial, cfg.seed, class_ids, groups, cap)

    asked = [k for _, k in need]
    out = []
    for i, (s, k) in enumerate(need):
        size = next(
            (m for m in range(k - 1, 0, -1) if works([*asked[:i], m, *asked[i + 1 :]])), None
        )
        if size is not None:
            out.append(f"  data.split.{s}_per_class: {size} (the largest every class can give)")
    if not out and len(need) == 2:
        out += _largest_pair(need, asked, works)
    if groups is not None:
        cap = next((m for m in range(5, 0, -1) if m != cfg.max_per_group and works(asked, m)), None)
        if cap is not None:
            out.append(
                f"  data.split.max_per_group: {cap} with the asked sizes (each val/test group "
                f"gives at most {cap} images, the rest of it set aside)"
            )
    if not out:
        out.append("  no smaller split size works for every class")
    return out


def _largest_pair(
    need: list[tuple[str, int]], asked: list[int], works: Callable[[list[int]], bool]
) -> list[str]:
    """The largest (test, val) pair every class can give; val 0 (no model selection) last."""
    pairs = sorted(
        ((t, v) for t in range(1, asked[0] + 1) for v in range(0, asked[1] + 1)),
        key=lambda tv: (tv[1] == 0, -(tv[0] + tv[1]), -tv[0]),
    )
    pair = next((tv for tv in pairs[:400] if works(list(tv))), None)
    if pair is None:
        return []
    why = (
        " (no validation split: nothing is selected on val)"
        if pair[1] == 0
        else " (the largest pair every class can give)"
    )
    return [
        f"  data.split.{need[0][0]}_per_class: {pair[0]} with {need[1][0]}_per_class: "
        f"{pair[1]}{why}"
    ]


def _fewer_classes(
    lset: LabelledSet,
    cfg: SplitConfig,
    faults: list[CarveFault],
    filter_counts: np.ndarray | None = None,
) -> list[str]:
    """The classes to leave out for the asked sizes: by name, or by data.classes.min_count
    (a class's carve does not depend on the others, so what passed alone passes again). The
    threshold is on the counts min_count filters (`filter_counts`, default this listing's): a
    class emptied by dropped duplicates still counts its copies there."""
    if lset.num_classes - len(faults) < 2:
        return ["  (fewer classes: fewer than 2 classes can give the asked sizes)"]
    listed = lset.class_counts(listed_splits(lset, cfg) == "train")
    pool = pool_counts_before_carving(lset, cfg) if filter_counts is None else filter_counts
    bad = {f.class_name for f in faults}
    ok = [c for c, n in enumerate(lset.class_names) if n not in bad]
    names = ", ".join(f"'{f.class_name}'" for f in faults[:6]) + (" ..." if len(faults) > 6 else "")
    out = [
        f"  data.classes.exclude: [{names}] keeps {len(ok)} of {lset.num_classes} classes, "
        f"{int(listed[ok].sum()):,} listed training images"
    ]
    threshold = int(max(pool[c] for c, n in enumerate(lset.class_names) if n in bad)) + 1
    kept = np.flatnonzero(pool >= threshold)
    if len(kept) >= 2:
        out.append(
            f"  data.classes.min_count: {threshold} keeps {len(kept)} of {lset.num_classes} "
            f"classes, {int(listed[kept].sum()):,} listed training images"
        )
    return out


def headroom_lines(
    lset: LabelledSet,
    cfg: SplitConfig,
    class_ids: np.ndarray,
    groups: np.ndarray | None,
    limit: int = 50,
) -> list[str]:
    """`data stats`: per carved split, the largest size every class can give with the other
    as set (found by carving; with groups not every smaller size works: exact sums)."""
    need = carve_needs(listed_splits(lset, cfg), cfg)
    out = []
    for i, (s, k) in enumerate(need):
        works = []
        for size in range(k, k + limit):
            trial = [(n, size if j == i else kk) for j, (n, kk) in enumerate(need)]
            split = listed_splits(lset, cfg)
            if not carve(lset, split, trial, cfg.seed, class_ids, groups, cfg.max_per_group):
                works.append(size)
        if not works:
            continue
        best = works[-1]
        if best == k:
            out.append(f"data.split.{s}_per_class: {k} (the largest every class can give)")
            continue
        fail = [m for m in range(k, best) if m not in works]
        bound = "at least " if best == k + limit - 1 else ""
        gaps = f"; in between, the carve fails at {_sizes(tuple(fail))}" if fail else ""
        out.append(
            f"data.split.{s}_per_class: {k} (every class can give up to {bound}{best}, checked "
            f"by carving{gaps})"
        )
    return out

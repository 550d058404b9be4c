"""What fits: the one place that asks whether the split sizes can be carved, and if not, what
can. What it proposes is checked by carving again (`carve.carve`), so it is what `make_splits`
will do. (What one class can give when its carve fails, `carve.CarveFault` with
`carve.can_give`, is reported by the carve itself, which this module carves with.)

- `pool_counts_before_carving`: each class's train pool before it is carved (what
  data.classes.min_count filters on, and what the subsets' advice and trade-off count from);
- `infeasible_error`: a size some classes cannot give, with every class at fault and the
  settings that work (smaller sizes, max_per_group, fewer classes), as `SplitInfeasible`;
- `headroom_lines`: `data stats`'s largest sizes every class can give.

The subsets' own fit (a plan within each class's pool: `subsets/plans.py`) and the probe
set's (`probe.py`) are asked where those are made."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...config import SplitConfig
from ...errors import UserError
from ..listing.labelled import LabelledSet
from .carve import CarveFault, carve, carve_needs, listed_splits, split_before_carving


def pool_counts_before_carving(lset: LabelledSet, cfg: SplitConfig) -> np.ndarray:
    """Per class, the train pool `make_splits` will leave (listed training images less the
    carved val/test), computed without carving: class filters apply before the carve."""
    split = listed_splits(lset, cfg)
    carved = sum(k for _, k in carve_needs(split, cfg))
    return np.maximum(lset.class_counts(split == "train") - carved, 0)


def listed_train_counts(lset: LabelledSet, cfg: SplitConfig) -> np.ndarray:
    """Per class, the training images the source lists, before val/test are carved from them."""
    return lset.class_counts(listed_splits(lset, cfg) == "train")


class SplitInfeasible(UserError):
    """A carved size some classes cannot give; `classes` names them (so a later stage can add
    what it knows of their cause, such as the duplicates it left out)."""

    def __init__(self, message: str, classes: tuple[str, ...]) -> None:
        super().__init__(message)
        self.classes = classes


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
        split = split_before_carving(lset, cfg, groups)
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
    listed = listed_train_counts(lset, cfg)
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
            split = split_before_carving(lset, cfg, groups)
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

"""How much of the data a matched study uses, and what each choice would change, before
anything trains.

Every arm of a matched study has the same n, the largest every configured level allows: the
balanced level needs n / classes images of the smallest class, so a few small classes can leave
most of the pool unused. Per arm: images used and their share of the pool; per class filter:
which classes are kept and why the others are not; per choice (one imbalance level instead of
all, a `data.classes.min_count`): the matched n, the classes kept and the share of the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ...errors import UserError
from ..split.feasibility import listed_train_counts, pool_counts_before_carving
from ..split.leakage import few_group_lines, leakage_line
from .plans import plan_subsets

# a study_data.StudyData (not imported: stats builds its lines from this module)
StudyData = Any


def dropped_classes(data: StudyData) -> list[tuple[str, str]]:
    """(class, why) for each listed class `data.classes` leaves out."""
    listing, sel = data.listing, data.cfg.classes
    if listing is None:
        return []
    kept = set(data.class_names)
    pool = pool_counts_before_carving(listing, data.cfg.split)
    out = []
    for c, name in enumerate(listing.class_names):
        if name in kept:
            continue
        if sel.include and name not in sel.include:
            why = "not in data.classes.include"
        elif name in sel.exclude:
            why = "in data.classes.exclude"
        elif sel.min_count and pool[c] < sel.min_count:
            why = f"data.classes.min_count {sel.min_count}: {_pool_words(listing, c, data, pool)}"
        else:
            why = "left out by data.classes"
        out.append((name, why))
    return out


def _pool_words(listing: Any, c: int, data: StudyData, pool: np.ndarray) -> str:
    """A dropped class's pool in words: what val/test carving would leave of its images."""
    listed = int(listed_train_counts(listing, data.cfg.split)[c])
    carved = listed - int(pool[c])
    if carved and pool[c] == 0:
        return f"{listed} training images, all of them needed by val/test ({carved} per class)"
    if carved:
        return f"{int(pool[c])} in its pool ({listed} listed, {carved} to val/test)"
    return f"{int(pool[c])} in its pool"


def arm_usage(data: StudyData, seed: int) -> dict[str, Any]:
    """Per arm: images, share of the train pool; the classes kept and dropped, and why."""
    pool = len(data.indices("train"))
    plans = data.draw(seed).plans
    listed = data.listing.num_classes if data.listing is not None else data.num_classes
    pretrain = data.class_counts(data.pretrain_pool)
    tight = int(np.argmin(pretrain))
    return {
        "pool": pool,
        "aside": int((data.split == "aside").sum()),
        "arms": {p.name: {"n": p.size, "share_of_pool": p.size / pool} for p in plans},
        "classes_listed": listed,
        "classes_kept": data.num_classes,
        "dropped": [{"class": c, "why": w} for c, w in dropped_classes(data)],
        "smallest_class": {
            "class": data.class_names[tight],
            "pretrain_images": int(pretrain[tight]),
            "all_equal": bool(pretrain.min() == pretrain.max()),
        },
    }


def usage_lines(usage: dict[str, Any]) -> list[str]:
    arms = ", ".join(
        f"{name} {a['n']:,} ({a['share_of_pool']:.1%})" for name, a in usage["arms"].items()
    )
    small = usage["smallest_class"]
    if small.get("all_equal"):
        smallest = f"every class has {small['pretrain_images']:,} images for pretraining"
    else:
        smallest = (
            f"the smallest class, '{small['class']}', has {small['pretrain_images']:,} images "
            "for pretraining"
        )
    aside = usage.get("aside", 0)
    aside_words = (
        f"; {aside:,} images set aside (they share a data.group_by group with a val or test "
        "image: the rest of a group capped by data.split.max_per_group, or of a group the "
        "official split put in val/test; never trained on)"
        if aside
        else ""
    )
    lines = [
        f"used per arm (of a {usage['pool']:,}-image train pool): {arms}; {smallest}{aside_words}",
        f"classes: {usage['classes_kept']} of {usage['classes_listed']} listed kept"
        + (
            "; dropped: " + "; ".join(f"'{d['class']}' ({d['why']})" for d in usage["dropped"])
            if usage["dropped"]
            else ""
        ),
    ]
    return lines


def _level_cfg(data: StudyData, level: float) -> Any:
    """The imbalance settings with `level` as the only imbalanced level."""
    imb = data.cfg.imbalance
    key = "exponent" if imb.profile == "power" else "ratio"
    return imb.model_copy(update={key: level, "sweep": []})


def tradeoff_rows(
    data: StudyData, min_count_options: Callable[[], list[tuple[int, int, int]]]
) -> list[dict[str, Any]]:
    """The matched n, classes kept and share of the train pool: as configured, with one
    imbalance level at a time (where several are configured), and with the
    `data.classes.min_count` settings `min_count_options` gives as (min_count, classes kept,
    n) (natural/power)."""
    imb = data.cfg.imbalance
    pool = len(data.indices("train"))
    pool_counts = data.split_counts("train")
    pretrain = data.class_counts(data.pretrain_pool)
    n_now = data.base_plans[0].size
    rows = [_row("as configured", n_now, data.num_classes, pool)]
    levels = imb.levels()[1:]
    if len(levels) > 1 and imb.n is None:
        for level in levels:
            try:
                plans = plan_subsets(
                    pretrain, _level_cfg(data, level), data.class_names, natural_counts=pool_counts
                )
            except UserError:
                continue
            if plans[0].size != n_now:  # the balanced level binds n in most studies
                rows.append(_row(f"level {level:g} only", plans[0].size, data.num_classes, pool))
    if imb.profile in ("natural", "power") and imb.n is None and data.listing is not None:
        for k, kept, n in min_count_options():
            rows.append(_row(f"data.classes.min_count: {k}", n, kept, pool))
    return rows


def _row(choice: str, n: int, classes: int, pool: int) -> dict[str, Any]:
    return {"choice": choice, "n": int(n), "classes": int(classes), "share_of_pool": n / pool}


def tradeoff_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The trade-off table as `data stats` and `run --plan` print it."""
    if len(rows) < 2:
        return []
    w = max(len(r["choice"]) for r in rows)
    lines = [
        "matched n by choice (n: the largest every level allows, per arm; share of this "
        "config's train pool):",
        f"  {'choice':{w}s} {'n':>8s} {'classes':>7s} {'share':>7s}",
    ]
    for r in rows:
        lines.append(
            f"  {r['choice']:{w}s} {r['n']:8,d} {r['classes']:7d} {r['share_of_pool']:7.1%}"
        )
    return lines


def natural_data_lines(stats: dict[str, Any]) -> list[str]:
    """The report's sentences on groups, leakage, duplicates and the data used, from
    stats.json (none for runs that did not record them)."""
    lines = []
    usage = stats.get("usage")
    if usage:
        lines += usage_lines(usage)
    if stats.get("item_groups"):
        groups = ", ".join(f"{k} {v}" for k, v in stats["item_groups"].items())
        lines.append(f"data.group_by groups: {groups}.")
    per_class = stats.get("item_groups_per_class") or {}
    if per_class:
        first = per_class[min(per_class, key=int)]
        lines += [line.strip() + "." for line in few_group_lines(first, stats.get("classes", []))]
    for seed, leak in (stats.get("leakage") or {}).items():
        lines.append(leakage_line(leak, int(seed)).replace("leakage:", f"Leakage (seed {seed}):"))
    dup = stats.get("duplicates")
    if dup:
        lines.append(
            f"Duplicates ({dup.get('action')}): {dup['exact_sets']} exact and {dup['near_sets']} "
            f"near sets; {dup['crossing_a_split']} cross a split, {dup['under_two_labels']} are "
            f"under two classes; {len(dup.get('dropped', []))} images dropped."
        )
    rows = stats.get("tradeoff") or []
    lines += [line.strip() for line in tradeoff_lines(rows)]
    return lines

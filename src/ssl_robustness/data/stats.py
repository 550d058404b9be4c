"""What a study's data holds, as `data stats` prints it and stats.json records it: counts per
split, subset and seed, frequency tiers, the probe set, data.group_by groups, leakage, duplicate
sets and the data trade-off; and the manifests written beside them."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..atomic import write_json
from ..layout import DataLayout
from .listing.duplicates import duplicate_lines
from .listing.purge import held_out_copy_lines
from .split.feasibility import headroom_lines
from .split.leakage import few_group_lines, group_counts, groups_per_class, leakage, leakage_line
from .store.manifest import count_stats, write_manifest
from .study_data import SeedDraw, StudyData
from .subsets.advice import min_count_options, ways_out_lines
from .subsets.profiles import gini, imbalance_ratio
from .subsets.tiers import TIER_NAMES
from .subsets.tradeoff import arm_usage, tradeoff_lines, tradeoff_rows, usage_lines


def write_data_manifests(data: StudyData, seeds: list[int]) -> None:
    """One manifest per split, per seed's subset and for the probe set; stats.json."""
    layout = DataLayout(data.directory)
    sets = {f"split-{s}": (data.indices(s), s, "") for s in ("train", "val", "test")}
    for seed in seeds:
        for name, idx in data.draw(seed).subsets.items():
            sets[f"subset-{name}-s{seed}"] = (idx, "train", name)
    sets["probe-balanced"] = (data.probe_balanced, "train", "probe-balanced")
    for name, (idx, split, subset) in sets.items():
        write_manifest(
            layout.manifest(name),
            [data.items[i] for i in idx],
            data.labels[idx],
            data.class_names,
            split,
            subset,
        )
    for old in layout.manifests.glob("*.csv"):  # an earlier setting's subsets or seeds
        if old.stem not in sets:
            old.unlink()
    write_json(layout.stats, data_stats(data, seeds))


def stats_lines(data: StudyData, seed: int) -> list[str]:
    """`data stats` as printed: per-class counts of every split and subset (of `seed`'s
    draw) with the class's tier, totals, each subset's imbalance, and the tiers' rule."""
    ref = data.draw(seed)
    names = [p.name for p in ref.plans]
    w = max(24, *(len(n) for n in data.class_names))  # never cut: distinct names print apart
    lines = [
        f"{'class':{w}s} {'pool':>6s} {'val':>5s} {'test':>5s} "
        + " ".join(f"{n[:12]:>12s}" for n in names)
        + "  tier"
    ]
    pool, val, test = (data.split_counts(s) for s in ("train", "val", "test"))
    for c, name in enumerate(data.class_names):
        lines.append(
            f"{name:{w}s} {pool[c]:6d} {val[c]:5d} {test[c]:5d} "
            + " ".join(f"{int(p.counts[c]):12d}" for p in ref.plans)
            + f"  {ref.tiers[c]}"
        )
    lines.append(
        f"{'total':{w}s} {pool.sum():6d} {val.sum():5d} {test.sum():5d} "
        + " ".join(f"{p.size:12d}" for p in ref.plans)
    )
    lines.append(_seed_note(data, seed))
    pool = len(data.indices("train"))
    for p in ref.plans:
        lines.append(
            f"{p.name}: n={p.size} ({p.size / pool:.1%} of the train pool), imbalance ratio "
            f"{imbalance_ratio(p.counts):.4f}, Gini {_no_minus_zero(gini(p.counts), 3)}"
        )
    lines += ways_out_lines(data)
    lines += split_headroom(data)
    probe = data.class_counts(data.probe_balanced)
    where = "disjoint from every subset" if data.probe_protocol == "disjoint" else "overlapping"
    lines.append(
        f"probe set ({data.probe_protocol}): {int(probe.sum())} images, {int(probe.max())} per "
        f"class, {where}"
    )
    test = data.split_counts("test")
    lines.append(
        "test split: balanced"
        if data.test_balanced
        else f"test split: NOT balanced ({int(test.min())}..{int(test.max())} per class); "
        "the verdict uses balanced accuracy"
    )
    lines.append(
        f"tiers (head/medium/tail): rule '{ref.tier_rule}' from {data.imbalanced_name}; "
        f"bad images skipped: {len(data.bad_images)}"
    )
    lines += item_group_lines(data, seed)
    lines += duplicate_lines(data.duplicates, data.cfg.duplicates.action)
    lines += usage_lines(arm_usage(data, seed))
    lines += tradeoff_lines(data_tradeoff(data))
    if data.dropped:
        lines.append(f"duplicates dropped: {len(data.dropped)} images (see stats.json)")
    lines += held_out_copy_lines(data.duplicates, data.cfg.duplicates.action)
    return lines


def split_headroom(data: StudyData) -> list[str]:
    """How far the carved val/test sizes could grow (the same carve `make_splits` runs)."""
    if data.source is None:
        return []
    ids = data.class_ids if data.class_ids is not None else np.arange(data.num_classes)
    gb = data.cfg.group_by
    together = data.item_group if gb is not None and gb.keep_together else None
    if together is not None and len(together) != len(data.source):
        return []
    return headroom_lines(data.source, data.cfg.split, ids, together)


def data_stats(data: StudyData, seeds: list[int]) -> dict[str, Any]:
    ref = data.draw(seeds[0])
    overlap = {
        str(seed): {
            name: data.class_counts(idx[np.isin(idx, data.probe_balanced)]).tolist()
            for name, idx in data.draw(seed).subsets.items()
        }
        for seed in seeds
    }
    return {
        "classes": data.class_names,
        "splits": {
            s: _counts(data, data.indices(s))
            for s in ("train", "val", "test")
            if len(data.indices(s))
        },
        "test_balanced": data.test_balanced,
        "pretrain_pool": _counts(data, data.pretrain_pool),
        "subsets": {
            p.name: {
                "level": p.level,
                "balanced": p.balanced,
                "matched": p.matched,
                **_counts(data, ref.subsets[p.name]),
            }
            for p in ref.plans
        },
        "probe_balanced": {
            "protocol": data.probe_protocol,
            "per_class": int(np.bincount(data.labels[data.probe_balanced]).max()),
            **{k: v for k, v in _counts(data, data.probe_balanced).items() if k != "per_class"},
        },
        "probe_overlap": overlap,
        "tiers": _tiers(data, ref),
        "seeds": {
            str(seed): {
                "subsets": {
                    n: _counts(data, i)["counts"] for n, i in data.draw(seed).subsets.items()
                },
                "tiers": _tiers(data, data.draw(seed)),
            }
            for seed in seeds
        },
        "interval_covers": interval_covers(data),
        "class_order": {
            "order": data.class_order.order,
            "per_seed": data.class_order.per_seed,
            "why": data.class_order.why,
        },
        "bad_images": {"count": len(data.bad_images), "items": data.bad_images},
        **_item_group_stats(data, seeds),
    }


def data_tradeoff(data: StudyData) -> list[dict[str, Any]]:
    """The trade-off table's rows (subsets/tradeoff.py), with the class filters' options."""
    return tradeoff_rows(
        data,
        lambda: min_count_options(
            data.split_counts("train"), data.cfg, data.listing, data.directory, data.evaluation
        ),
    )


def interval_covers(data: StudyData) -> str:
    """What varies across study seeds: the sentence the report puts beside every interval."""
    imb = data.cfg.imbalance
    parts = ["the initialisation and training randomness"]
    if imb.resample_per_seed:
        parts.append("which images each pretraining subset draws from the pool")
    if data.class_order.per_seed:
        parts.append("which classes are rare")
    fixed = "val, test and the probe set are fixed"
    if not imb.resample_per_seed:
        fixed = "the subsets, " + fixed
    return f"95% intervals over seeds cover {', '.join(parts)}; {fixed}."


def _counts(data: StudyData, idx: np.ndarray) -> dict[str, Any]:
    counts = data.class_counts(idx)
    return {**count_stats(counts), "counts": [int(x) for x in counts]}


def _no_minus_zero(x: float, digits: int) -> str:
    """`x` to `digits` places, never "-0.000" (a balanced set's Gini is 0, not below)."""
    text = f"{x:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _seed_note(data: StudyData, seed: int) -> str:
    """Which seed's subsets the table shows, and whether other seeds draw others."""
    shown = f"subsets shown: study seed {seed}'s draw"
    if data.class_order.per_seed:
        return f"{shown} (each seed draws its own images and its own rare classes)"
    if data.cfg.imbalance.resample_per_seed:
        return f"{shown} (each seed draws its own images; the counts per class are the same)"
    return f"{shown} (the same images in every seed)"


def item_group_lines(data: StudyData, seed: int) -> list[str]:
    """data.group_by groups per split and the leakage line."""
    leak = leakage_of(data, seed)
    if data.item_group is None:
        return [leakage_line(None, seed)]
    n = group_counts(data.item_group, _group_sets(data))
    gb = data.cfg.group_by
    how = "kept together" if gb is not None and gb.keep_together else "measured only"
    lines = [
        f"data.group_by groups ({how}): "
        + ", ".join(f"{name} {count}" for name, count in n.items()),
    ]
    if gb is not None:
        lines += few_group_lines(class_groups(data, seed), data.class_names)
    return [*lines, leakage_line(leak, seed)]


def class_groups(data: StudyData, seed: int) -> dict[str, list[int]]:
    """data.group_by groups of each class in every split, the probe set and `seed`'s arms."""
    assert data.item_group is not None
    sets = {**_group_sets(data), **data.draw(seed).subsets}
    return groups_per_class(data.item_group, data.labels, data.num_classes, sets)


def _group_sets(data: StudyData) -> dict[str, np.ndarray]:
    return {
        "pool": data.indices("train"),
        "val": data.indices("val"),
        "test": data.indices("test"),
        "probe set": data.probe_balanced,
    }


def leakage_of(data: StudyData, seed: int) -> dict[str, Any] | None:
    """Test images sharing a data.group_by group with the pool, probe set and seed's subsets."""
    if data.item_group is None:
        return None
    return leakage(
        data.item_group,
        data.indices("test"),
        data.indices("train"),
        data.probe_balanced,
        data.draw(seed).subsets,
        data.indices("val"),
    )


def _item_group_stats(data: StudyData, seeds: list[int]) -> dict[str, Any]:
    """stats.json's data.group_by entries; none without group_by (the file stays as it was)."""
    out: dict[str, Any] = {"usage": arm_usage(data, seeds[0]), "tradeoff": data_tradeoff(data)}
    if data.duplicates is not None:
        out["duplicates"] = {**data.duplicates, "action": data.cfg.duplicates.action}
        out["duplicates"]["dropped"] = data.dropped
    if data.item_group is not None:
        out["item_groups"] = group_counts(data.item_group, _group_sets(data))
        if data.cfg.group_by is not None:
            out["item_groups_per_class"] = {str(seed): class_groups(data, seed) for seed in seeds}
        out["leakage"] = {str(seed): leakage_of(data, seed) for seed in seeds}
    return out


def _tiers(data: StudyData, d: SeedDraw) -> dict[str, Any]:
    return {
        "rule": d.tier_rule,
        "from_subset": d.imbalanced_name,
        "per_class": [str(t) for t in d.tiers],
        "members": {
            t: [data.class_names[i] for i in np.flatnonzero(d.tiers == t)] for t in TIER_NAMES
        },
    }

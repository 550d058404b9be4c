"""Arranging a listing (no images) into splits, a probe set and the subsets' plans, with every
feasibility check."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import DataConfig, EvaluationConfig
from ..errors import UserError
from .duplicates import DuplicateSet
from .item_groups import item_groups, link_groups
from .labelled import LabelledSet
from .sources import listing_class_ids
from .splits import make_splits, pool_counts_before_carving
from .study_data import StudyData, subset_plans
from .subsets import draw, per_class_order, plan_subsets, resolve_class_order, worst_case_pool
from .whole_groups import probe_in_whole_groups


def arrange(
    lset: LabelledSet,
    cfg: DataConfig,
    directory: Path,
    evaluation: EvaluationConfig | None = None,
    *,
    listing: LabelledSet | None = None,
    bad: list[str] | None = None,
    linked: list[DuplicateSet] | None = None,
) -> StudyData:
    """Split, carve the probe set and plan the subsets of a listing (no images); `linked`:
    sets of items kept in one split (data.duplicates.action: group)."""
    class_ids = listing_class_ids(lset, listing)
    groups = link_groups(item_groups(lset, cfg), lset, [s.items for s in linked or []])
    apart = cfg.group_by is not None and not cfg.group_by.keep_together and not linked
    together = None if apart else groups
    # min_count filters the listing before bad images and duplicates leave: propose on that
    seen = None if listing is None else pool_counts_before_carving(listing, cfg.split)[class_ids]
    split = make_splits(lset, cfg.split, class_ids, together, seen)
    pool = np.flatnonzero(split == "train")
    pool_counts = lset.class_counts(split == "train")
    empty = np.flatnonzero(pool_counts == 0)
    if len(empty):
        raise UserError(f"data: class '{lset.class_names[empty[0]]}' has no training images")
    pool_order = per_class_order(lset.labels, pool, lset.num_classes, cfg.imbalance.seed, class_ids)
    protocol = evaluation.probe_set if evaluation is not None else "disjoint"
    asked = evaluation.probe_per_class if evaluation is not None else None
    probe = carve_probe(
        pool_order, pool_counts, cfg, protocol, asked, lset.class_names, together, class_ids
    )
    if together is not None and protocol == "disjoint":  # the probe set at each order's tail
        pool_order = [
            np.concatenate([o[~np.isin(o, probe)], o[np.isin(o, probe)]]) for o in pool_order
        ]
    pretrain_pool = pool if protocol == "pool" else np.setdiff1d(pool, probe)
    data = StudyData(
        class_names=lset.class_names,
        items=lset.items,
        labels=lset.labels,
        split=split,
        probe_balanced=probe,
        probe_protocol=protocol,
        directory=directory,
        cfg=cfg,
        pretrain_pool=pretrain_pool,
        pool_order=pool_order,
        base_plans=[],
        bad_images=bad or [],
        class_ids=class_ids,
        source=lset,
        listing=listing,
        evaluation=evaluation,
        item_group=groups,
    )
    data.base_plans = subset_plans(data)
    return data


def carve_probe(
    pool_order: list[np.ndarray],
    pool_counts: np.ndarray,
    cfg: DataConfig,
    protocol: str,
    asked: int | None,
    class_names: list[str],
    groups: np.ndarray | None = None,
    class_ids: np.ndarray | None = None,
) -> np.ndarray:
    """The balanced labelled set of the probes, `asked` (or the largest allowed) per class;
    with `groups` (disjoint protocol) in whole groups, none shared with the pretraining pool.

    disjoint: the tail of each class's fixed order, kept out of every pretraining subset, so
    both arms are probed on images neither has seen. pool: Liu et al.'s protocol, a prefix of
    the same order (it overlaps the subsets).
    """
    min_pool = int(pool_counts.min())
    if protocol == "pool":
        per_class = asked or min_pool
        if per_class > min_pool:
            raise UserError(
                f"evaluation.probe_per_class: {per_class} exceeds the smallest class's training "
                f"pool ({min_pool})"
            )
        return draw(pool_order, np.full(len(pool_counts), per_class))
    imb = cfg.imbalance
    if imb.n is not None or imb.n_max is not None:
        # the subsets' size is fixed: the probe set gets what they leave; where each seed
        # draws which classes are rare, any class may be the head in some seed
        per_seed = resolve_class_order(imb, pool_counts).per_seed
        planned = worst_case_pool(pool_counts) if per_seed else pool_counts
        plans = [p for p in plan_subsets(planned, imb, class_names) if p.matched]
        need = np.max([p.counts for p in plans], axis=0)
        if per_seed:
            need = np.full_like(need, need.max())
        spare = pool_counts - need
        largest = int(spare.min())
        per_class = asked or largest
        limits = spare
        tight = class_names[int(np.argmin(spare))]
        if per_class > largest or per_class < 1:
            raise UserError(
                f"evaluation.probe_per_class: {per_class} images per class cannot be disjoint "
                f"from the pretraining subsets (class '{tight}' has {int(pool_counts.min())}.."
                f"{int(pool_counts.max())} in its pool and the subsets need "
                f"{int(need[np.argmin(spare)])}); the largest disjoint size is {max(largest, 0)}. "
                "Lower data.imbalance.n, or set evaluation.probe_set: pool (Liu et al.'s "
                "overlapping protocol)" + _default_probe_note(asked, "what the subsets leave")
            )
    else:
        # the subsets' size follows from the pool: by default half of the smallest class
        # goes to the probe set, the rest to pretraining
        per_class = asked or max(min_pool // 2, 1)
        limits = pool_counts - 1
        if per_class >= min_pool:
            raise UserError(
                f"evaluation.probe_per_class: {per_class} leaves class "
                f"'{class_names[int(np.argmin(pool_counts))]}' ({min_pool} training images) "
                f"nothing to pretrain on; the largest disjoint size is {min_pool - 1}"
                + _default_probe_note(asked)
            )
    if groups is not None:
        ids = np.arange(len(pool_order)) if class_ids is None else class_ids
        return probe_in_whole_groups(
            pool_order, groups, per_class, limits, bool(asked), class_names, imb.seed, ids
        )
    return np.sort(np.concatenate([o[len(o) - per_class :] for o in pool_order]))


def _default_probe_note(asked: int | None, default: str = "half the smallest class's pool") -> str:
    """An error about a probe size the user never set says where it came from and the way out."""
    if asked:
        return ""
    return (
        f". evaluation.probe_per_class is not set: its default is {default}; "
        "drop the smallest classes with data.classes.min_count (see `data stats`), or set "
        "evaluation.probe_set: pool"
    )

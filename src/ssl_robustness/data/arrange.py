"""Arranging a listing (no images) into splits, a probe set and the subsets' plans, with every
feasibility check: the split stage (`split/`), then the probe set (`split/probe.py`), then the
subsets' plans (`subsets/`), into a StudyData."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import DataConfig, EvaluationConfig
from ..errors import UserError
from .listing.classes import listing_class_ids
from .listing.duplicates import DuplicateSet
from .listing.item_groups import item_groups, link_groups
from .listing.labelled import LabelledSet
from .split.feasibility import pool_counts_before_carving
from .split.probe import carve_probe
from .split.splits import make_splits
from .study_data import StudyData, subset_plans
from .subsets.plans import per_class_order


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

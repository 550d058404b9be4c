"""Train pool / val / test: official splits where the source has them, else a seeded
stratified split whose val and test sets are balanced per class (`carve`); a size some class
cannot give is an error that says what fits (`feasibility`)."""

from __future__ import annotations

import numpy as np

from ...config import SplitConfig
from ..listing.labelled import LabelledSet
from .carve import carve, carve_needs, split_before_carving
from .feasibility import infeasible_error


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
    split = split_before_carving(lset, cfg, groups)
    need = carve_needs(split, cfg)
    if need:
        ids = np.arange(lset.num_classes) if class_ids is None else np.asarray(class_ids)
        faults = carve(lset, split, need, cfg.seed, ids, groups, cfg.max_per_group)
        if faults:
            raise infeasible_error(lset, cfg, need, faults, ids, groups, filter_counts)
    return split

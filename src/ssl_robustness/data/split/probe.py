"""The balanced probe set: carved from each class's train pool, disjoint from every
pretraining subset (or, with `evaluation.probe_set: pool`, a prefix of the same order)."""

from __future__ import annotations

import numpy as np

from ...config import DataConfig
from ...errors import UserError
from ..subsets.plans import draw, plan_subsets, resolve_class_order, worst_case_pool
from .whole_groups import probe_in_whole_groups


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

"""The class filters of `data.classes` (include, exclude, min_count) and the class ids that
keep a filtered listing's draws as the unfiltered listing's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ...config import DataConfig
from ...errors import UserError
from ..split.feasibility import pool_counts_before_carving
from .labelled import LabelledSet


def select_classes(lset: LabelledSet, cfg: DataConfig) -> LabelledSet:
    """The classes `data.classes` keeps (include, then exclude, then min_count on the train
    pool), labels re-indexed densely in the source's class order; unknown names are errors."""
    sel = cfg.classes
    if not (sel.include or sel.exclude or sel.min_count):
        return lset
    known = set(lset.class_names)
    for key in ("include", "exclude"):
        unknown = [n for n in getattr(sel, key) if n not in known]
        if unknown:
            shown = ", ".join(lset.class_names[:12]) + (" ..." if lset.num_classes > 12 else "")
            raise UserError(f"data.classes.{key}: unknown class(es) {unknown} (classes: {shown})")
    keep = np.ones(lset.num_classes, dtype=bool)
    if sel.include:
        keep &= np.isin(lset.class_names, sel.include)
    keep &= ~np.isin(lset.class_names, sel.exclude)
    if sel.min_count:
        keep &= pool_counts_before_carving(lset, cfg.split) >= sel.min_count
    kept = np.flatnonzero(keep)
    if len(kept) < 2:
        raise UserError(
            f"data.classes: keeps {len(kept)} class(es) "
            f"({', '.join(lset.class_names[i] for i in kept) or 'none'}) of "
            f"{lset.num_classes}; a study compares classes, so it needs at least 2"
        )
    return relabel(lset, kept)


def listing_class_ids(lset: LabelledSet, listing: LabelledSet | None) -> np.ndarray:
    """Each class's index in the unfiltered `listing` (its label when there is none): what
    seeds its carve and order, so a class filter leaves the kept classes' draws unchanged."""
    if listing is None or listing.class_names == lset.class_names:
        return np.arange(lset.num_classes)
    index: dict[str, int] = {}
    for i, name in enumerate(listing.class_names):
        index.setdefault(name, i)
    return np.array([index[name] for name in lset.class_names], dtype=np.int64)


def relabel(lset: LabelledSet, kept: np.ndarray) -> LabelledSet:
    """The items of classes `kept` (old label indices), labelled 0..len(kept)-1."""
    new_label = np.full(lset.num_classes, -1, dtype=np.int64)
    new_label[kept] = np.arange(len(kept))
    part = lset.take(np.flatnonzero(new_label[lset.labels] >= 0))
    return replace(
        part, labels=new_label[part.labels], class_names=[lset.class_names[i] for i in kept]
    )

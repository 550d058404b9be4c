"""Group ids of images that belong together (`data.group_by`), and whole-group draws.

Frames of one video track are near-copies of each other: with one in the pool and another in
the test set, the test measures recall, not generalisation. A group is kept in one split; its
id comes from a path pattern or a list column. (Not the head/medium/tail class groups.)
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...config import DataConfig
from ...errors import UserError
from .labelled import LabelledSet


def item_groups(lset: LabelledSet, cfg: DataConfig) -> np.ndarray | None:
    """Each item's group id (strings), None without `data.group_by`."""
    gb = cfg.group_by
    if gb is None:
        return None
    if gb.pattern is not None:
        rx = re.compile(gb.pattern)
        out = []
        for item in lset.items:
            m = rx.search(item)
            if m is None or m.group(1) is None:
                unmatched = [i for i in lset.items if (u := rx.search(i)) is None or u[1] is None]
                others = ", ".join(repr(i) for i in unmatched[1:4] if i != item)
                raise UserError(
                    f"data.group_by.pattern: {gb.pattern!r} does not match {item!r} "
                    f"({len(unmatched)} of {len(lset)} images unmatched"
                    + (f", e.g. also {others}" if others else "")
                    + "); every image needs a group"
                )
            out.append(m.group(1))
        groups = np.array(out, dtype=object)
    else:
        groups = _column_groups(lset, cfg)
    check_one_label(groups, lset)
    check_not_the_classes(groups, lset, gb.pattern or f"column {gb.column!r}")
    return groups


def check_not_the_classes(groups: np.ndarray, lset: LabelledSet, where: str) -> None:
    """One group per class is a pattern that captured the class folder (`fish_(\\d+)` where
    folders are `fish_01/`): every class would be one track, and the split could not be made."""
    if lset.num_classes > 1 and len(np.unique(groups)) == lset.num_classes:
        first = lset.items[0]
        raise UserError(
            f"data.group_by: {where} gives exactly one group per class (e.g. {first!r} is group "
            f"{groups[0]!r}): it captures the class, not the images that belong together; "
            "make the capture group match the track, plant or animal id within a class"
        )


def _column_groups(lset: LabelledSet, cfg: DataConfig) -> np.ndarray:
    """The group column of source `list`, read with the same parser and paths as the labels."""
    from ..sources.common import SPLIT_NAMES, relative_item
    from ..sources.list_files import base_folder, list_files, read_rows

    if cfg.source != "list" or cfg.list is None:
        raise UserError(
            f"data.group_by.column: only for source 'list' (this is '{cfg.source}'); "
            "use data.group_by.pattern on the image paths"
        )
    root = Path(cfg.root) if cfg.root is not None else Path(".")
    as_label = cfg.list.model_copy(
        update={"label_column": cfg.group_by.column, "label_from": "column"}
    )  # type: ignore[union-attr]
    by_item: dict[str, str] = {}
    for split in SPLIT_NAMES:
        for path in list_files(cfg.list, split):
            base = base_folder(root, cfg.list, split, path)
            for p, group, _ in read_rows(path, as_label):
                by_item[relative_item(root, base, p)] = group
    return np.array([by_item[i] for i in lset.items], dtype=object)


def check_one_label(groups: np.ndarray, lset: LabelledSet) -> None:
    """A group is one thing seen several times: two labels in it is a labelling error."""
    first: dict[str, int] = {}
    for i, g in enumerate(groups):
        j = first.setdefault(g, i)
        if lset.labels[j] != lset.labels[i]:
            names = lset.class_names
            raise UserError(
                f"data.group_by: group {g!r} holds images of two classes: {lset.items[j]!r} "
                f"('{names[lset.labels[j]]}') and {lset.items[i]!r} ('{names[lset.labels[i]]}'); "
                "a group must have one label"
            )


def link_groups(
    groups: np.ndarray | None, lset: LabelledSet, linked: list[tuple[str, ...]]
) -> np.ndarray | None:
    """`groups` (each item its own without group_by) with every set of `linked` items, and
    the groups they touch, merged into one; None when there is nothing to link."""
    if not linked:
        return groups
    ids = list(groups) if groups is not None else list(lset.items)
    index = {item: i for i, item in enumerate(lset.items)}
    parent: dict[str, str] = {}

    def find(g: str) -> str:
        while parent.get(g, g) != g:
            g = parent[g]
        return g

    for items in linked:
        roots = sorted({find(ids[index[i]]) for i in items if i in index})
        for r in roots[1:]:
            parent[r] = roots[0]
    merged = np.array([find(g) for g in ids], dtype=object)
    try:
        check_one_label(merged, lset)
    except UserError as err:
        raise UserError(
            f"{err} (data.duplicates.action: group linked duplicates filed under two classes; "
            "set action: drop to leave such sets out)"
        ) from None
    return merged

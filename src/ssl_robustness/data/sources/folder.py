"""Sources `folder` and `agrinet`: class folders `root/<class>/<image>` (or under
`root/{train,val,test}/`), and with `data.test_root` the test split's class folders there."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...config import DataConfig
from ...errors import UserError
from ..listing.labelled import LabelledSet
from .common import (
    IMAGE_EXTENSIONS,
    SPLIT_NAMES,
    is_image,
    refuse_broken_links,
    relative_item,
    source_root,
)
from .registry import register_source


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def load_folder(root: Path, class_names: list[str] | None = None) -> LabelledSet:
    """ImageFolder layout `root/<class>/<image>`, or `root/{train,val,test}/<class>/<image>`."""
    if not root.is_dir():
        raise UserError(f"data.root: not a folder: {root}")
    split_dirs = [s for s in SPLIT_NAMES if (root / s).is_dir()]
    if split_dirs and "train" not in split_dirs:
        raise UserError(f"{root}: has {split_dirs} split folders but no train/")
    tops = [(s, root / s) for s in split_dirs] if split_dirs else [(None, root)]
    if class_names is None:
        class_names = [d.name for d in _class_dirs(tops[0][1])]
    if not class_names:
        raise UserError(f"{tops[0][1]}: no class folders found (expected <class>/<image> files)")
    index = {name: i for i, name in enumerate(class_names)}
    items: list[str] = []
    labels: list[int] = []
    splits: list[str] = []
    for split, top in tops:
        for d in _class_dirs(top):
            if d.name not in index:
                raise UserError(f"{d}: class '{d.name}' is not a class of {tops[0][1]}")
            entries = list(d.iterdir())
            refuse_broken_links(entries)
            files = sorted(p for p in entries if is_image(p))
            if not files and split in (None, "train"):
                raise UserError(f"{d}: empty class folder (no {'/'.join(IMAGE_EXTENSIONS)} files)")
            for p in files:
                items.append(p.relative_to(root).as_posix())
                labels.append(index[d.name])
                splits.append(split or "")
        if split in (None, "train"):
            missing = set(class_names) - {d.name for d in _class_dirs(top)}
            if missing:
                raise UserError(f"{top}: class folders missing: {sorted(missing)}")
    return LabelledSet(
        items,
        np.array(labels),
        list(class_names),
        root=root,
        official_split=np.array(splits, dtype=object) if split_dirs else None,
    )


def load_folder_pair(root: Path, test_root: Path | None) -> LabelledSet:
    """Class folders under `root`, and with `test_root` the test split's class folders there
    (same class names); items stay relative to `root`."""
    train = load_folder(root)
    if test_root is None:
        return train
    if train.official_split is not None and (train.official_split == "test").any():
        raise UserError(f"data.test_root: {root} already has a test/ split folder")
    test = load_folder(test_root, class_names=train.class_names)
    test_items = [relative_item(root, test_root, item) for item in test.items]
    splits = train.official_split if train.official_split is not None else [""] * len(train)
    return LabelledSet(
        train.items + test_items,
        np.concatenate([train.labels, test.labels]),
        train.class_names,
        root=root,
        official_split=np.array([*splits, *["test"] * len(test)], dtype=object),
    )


@register_source("folder", "agrinet", class_word="class folder")
def read_folder(cfg: DataConfig) -> LabelledSet:
    return load_folder_pair(source_root(cfg), cfg.test_root)

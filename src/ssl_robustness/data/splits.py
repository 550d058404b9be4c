"""Train pool / val / test: official splits where the source has them, else a seeded
stratified split whose val and test sets are balanced per class."""

from __future__ import annotations

import numpy as np

from ..config import SplitConfig
from ..errors import UserError
from .labelled import LabelledSet


def make_splits(lset: LabelledSet, cfg: SplitConfig) -> np.ndarray:
    """Split name ('train', 'val', 'test') of every item."""
    n = len(lset)
    official = lset.official_split if cfg.use_official else None
    split = np.array(official if official is not None else ["train"] * n, dtype=object)
    split[split == ""] = "train"
    need = []
    if not (split == "test").any():
        need.append(("test", cfg.test_per_class))
    if not (split == "val").any() and cfg.val_per_class > 0:
        need.append(("val", cfg.val_per_class))
    if need:
        _carve(lset, split, need, cfg.seed)
    return split


def _carve(lset: LabelledSet, split: np.ndarray, need: list[tuple[str, int]], seed: int) -> None:
    per_class_needed = sum(k for _, k in need)
    for c, name in enumerate(lset.class_names):
        members = np.flatnonzero((lset.labels == c) & (split == "train"))
        if len(members) < per_class_needed + 1:
            asks = " + ".join(f"{s}_per_class={k}" for s, k in need)
            raise UserError(
                f"data.split: class '{name}' has {len(members)} training images; the split "
                f"needs {asks} + at least 1 for training. Lower data.split.*_per_class"
            )
        order = np.random.default_rng([seed, c]).permutation(members)
        start = 0
        for s, k in need:
            split[order[start : start + k]] = s
            start += k

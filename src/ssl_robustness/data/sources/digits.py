"""Source `digits`: scikit-learn's bundled handwritten digits (nothing on disk)."""

from __future__ import annotations

import numpy as np

from ...config import DataConfig
from ..listing.labelled import LabelledSet
from .registry import register_source


def load_digits() -> LabelledSet:
    """scikit-learn's 1,797 real 8x8 handwritten digits, grey levels 0..16 scaled to uint8 RGB."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    grey = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    pixels = np.repeat(grey[..., None], 3, axis=-1)
    return LabelledSet(
        items=[f"digits/{i:04d}" for i in range(len(grey))],
        labels=bunch.target,
        class_names=[str(c) for c in bunch.target_names],
        pixels=pixels,
    )


@register_source("digits")
def read_digits(cfg: DataConfig) -> LabelledSet:
    return load_digits()

"""Methods: one small file each, all trained by `engine.loop.fit`."""

from __future__ import annotations

import numpy as np
from torch import nn

from ..config import (
    AugmentationConfig,
    BYOLConfig,
    MocoV2Config,
    SimCLRConfig,
    SimSiamConfig,
    SupervisedConfig,
)
from .augment import (
    BYOL_VIEWS,
    MOCOV2_VIEW,
    SIMCLR_VIEW,
    SUPERVISED_VIEW,
    ViewSpec,
    adjust_view,
)
from .base import Method

DEFAULT_VIEWS: dict[type, tuple[ViewSpec, ViewSpec]] = {
    SupervisedConfig: (SUPERVISED_VIEW, SUPERVISED_VIEW),
    MocoV2Config: (MOCOV2_VIEW, MOCOV2_VIEW),
    SimSiamConfig: (MOCOV2_VIEW, MOCOV2_VIEW),
    SimCLRConfig: (SIMCLR_VIEW, SIMCLR_VIEW),
    BYOLConfig: BYOL_VIEWS,
}


def method_views(cfg, aug: AugmentationConfig | None) -> tuple[ViewSpec, ViewSpec]:
    """The two views a method trains on, with the study's adjustments applied."""
    views = DEFAULT_VIEWS[type(cfg)]
    if aug is None:
        return views
    return (
        adjust_view(views[0], aug.crop_min_scale, aug.flip, aug.color),
        adjust_view(views[1], aug.crop_min_scale, aug.flip, aug.color),
    )


def build_method(
    cfg,
    backbone: nn.Module,
    *,
    num_classes: int,
    class_counts: np.ndarray,
    train_size: int,
    augmentation: AugmentationConfig | None = None,
) -> Method:
    """The method a config names, around `backbone`."""
    from .byol import BYOL
    from .mocov2 import MocoV2
    from .simclr import SimCLR
    from .simsiam import SimSiam
    from .supervised import Supervised

    views = method_views(cfg, augmentation)
    if isinstance(cfg, SupervisedConfig):
        return Supervised.from_config(backbone, cfg, num_classes, class_counts, views[0])
    if isinstance(cfg, MocoV2Config):
        return MocoV2(backbone, cfg, train_size, views)
    if isinstance(cfg, SimSiamConfig):
        return SimSiam(backbone, cfg, views)
    if isinstance(cfg, SimCLRConfig):
        return SimCLR(backbone, cfg, views)
    if isinstance(cfg, BYOLConfig):
        return BYOL(backbone, cfg, views)
    raise ValueError(f"unknown method config {type(cfg).__name__}")

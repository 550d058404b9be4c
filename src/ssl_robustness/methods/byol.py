"""BYOL (Grill et al. 2020): online network predicts a momentum target, asymmetric views."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import BYOLConfig
from ..models.heads import mlp
from .augment import PAPER_CROP, ViewSpec
from .base import (
    MomentumTargets,
    StepContext,
    StepOutput,
    TwoViewMethod,
    cosine_momentum,
    symmetric_output,
)
from .registry import register_method

# asymmetric: the first view always blurred, the second rarely and sometimes solarized
BYOL_VIEWS = (
    ViewSpec(crop_scale=PAPER_CROP, saturation=0.2, blur_p=1.0),
    ViewSpec(crop_scale=PAPER_CROP, saturation=0.2, blur_p=0.1, solarize_p=0.2),
)


def byol_losses(p: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z_target) per example: the squared distance of l2-normalised vectors; no
    gradient reaches the target."""
    return 2 - 2 * F.cosine_similarity(p, z_target.detach(), dim=1)


def byol_loss(p: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
    """`byol_losses` averaged over the batch."""
    return byol_losses(p, z_target).mean()


@register_method(BYOLConfig, views=BYOL_VIEWS, self_supervised=True)
class BYOL(MomentumTargets, TwoViewMethod):
    name = "byol"

    def __init__(
        self, backbone: nn.Module, cfg: BYOLConfig, views: tuple[ViewSpec, ViewSpec] = BYOL_VIEWS
    ) -> None:
        super().__init__()
        self.views = views
        dim = backbone.feature_dim  # type: ignore[attr-defined]
        hidden = cfg.hidden_dim or 2 * dim
        self.backbone = backbone
        self.projector = mlp(dim, hidden, cfg.proj_dim)
        self.predictor = mlp(cfg.proj_dim, hidden, cfg.proj_dim)
        self.add_targets(backbone_t="backbone", projector_t="projector")
        self.momentum_base = cfg.momentum_base

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        v1, v2 = self.two_views(images, ctx)
        both = torch.cat([v1, v2])
        z = self.projector(self.backbone(both))
        p1, p2 = self.predictor(z).chunk(2)
        with torch.no_grad():
            t1, t2 = self.projector_t(self.backbone_t(both)).chunk(2)
        return symmetric_output(byol_losses(p1, t2), byol_losses(p2, t1), z.chunk(2)[0])

    def after_step(self, progress: float) -> None:
        m = cosine_momentum(self.momentum_base, progress)
        self.update_targets(m)

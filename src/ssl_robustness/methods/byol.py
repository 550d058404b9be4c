"""BYOL (Grill et al. 2020): online network predicts a momentum target, asymmetric views."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import BYOLConfig
from ..models.heads import mlp
from .augment import BYOL_VIEWS, ViewSpec, augment
from .base import Method, StepContext, StepOutput, cosine_momentum, frozen_copy, momentum_update


def byol_loss(p: torch.Tensor, z_target: torch.Tensor) -> torch.Tensor:
    """2 - 2 cos(p, z_target): the squared distance of l2-normalised vectors; no gradient
    reaches the target."""
    return (2 - 2 * F.cosine_similarity(p, z_target.detach(), dim=1)).mean()


class BYOL(Method):
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
        self.backbone_t = frozen_copy(backbone)
        self.projector_t = frozen_copy(self.projector)
        self.momentum_base = cfg.momentum_base

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        v1 = augment(images, self.views[0], ctx.generator)
        v2 = augment(images, self.views[1], ctx.generator)
        both = torch.cat([v1, v2])
        z = self.projector(self.backbone(both))
        p1, p2 = self.predictor(z).chunk(2)
        with torch.no_grad():
            t1, t2 = self.projector_t(self.backbone_t(both)).chunk(2)
        loss = 0.5 * (byol_loss(p1, t2) + byol_loss(p2, t1))
        return StepOutput(loss, z.chunk(2)[0])

    def after_step(self, progress: float) -> None:
        m = cosine_momentum(self.momentum_base, progress)
        momentum_update(self.backbone, self.backbone_t, m)
        momentum_update(self.projector, self.projector_t, m)

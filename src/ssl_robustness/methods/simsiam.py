"""SimSiam (Chen & He 2021): projector + predictor, stop-gradient, negative cosine."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SimSiamConfig
from ..models.heads import mlp
from .augment import ViewSpec
from .base import StepContext, StepOutput, TwoViewMethod, symmetric_output
from .mocov2 import MOCOV2_VIEW
from .registry import register_method


def negative_cosines(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-cos(p, stopgrad(z)) per example: z receives no gradient."""
    return -F.cosine_similarity(p, z.detach(), dim=1)


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-cos(p, stopgrad(z)), averaged over the batch."""
    return negative_cosines(p, z).mean()


# SimSiam trains on MoCo v2's views (Chen & He 2021, appendix A)
@register_method(SimSiamConfig, views=(MOCOV2_VIEW, MOCOV2_VIEW), self_supervised=True)
class SimSiam(TwoViewMethod):
    name = "simsiam"

    def __init__(
        self,
        backbone: nn.Module,
        cfg: SimSiamConfig,
        views: tuple[ViewSpec, ViewSpec] = (MOCOV2_VIEW, MOCOV2_VIEW),
    ) -> None:
        super().__init__()
        self.views = views
        dim = backbone.feature_dim  # type: ignore[attr-defined]
        proj = cfg.proj_dim or max(dim, 128)
        self.backbone = backbone
        self.projector = mlp(dim, proj, proj, layers=3, bn_last=True)
        self.predictor = mlp(proj, cfg.pred_hidden_dim or max(proj // 4, 32), proj)
        self.fix_predictor_lr = cfg.fix_predictor_lr

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        v1, v2 = self.two_views(images, ctx)
        z = self.projector(self.backbone(torch.cat([v1, v2])))
        p = self.predictor(z)
        z1, z2 = z.chunk(2)
        p1, p2 = p.chunk(2)
        return symmetric_output(negative_cosines(p1, z2), negative_cosines(p2, z1), z1)

    def param_groups(self) -> list[dict]:
        return [
            {"params": list(self.backbone.parameters()) + list(self.projector.parameters())},
            {"params": list(self.predictor.parameters()), "fixed_lr": self.fix_predictor_lr},
        ]

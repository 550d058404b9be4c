"""SimCLR (Chen et al. 2020): NT-Xent over both views, negatives from every process."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SimCLRConfig
from ..engine.distributed import gather_with_grad, rank
from ..models.heads import mlp
from .augment import PAPER_CROP, ViewSpec
from .base import StepContext, StepOutput, TwoViewMethod, cross_entropy_terms
from .registry import register_method
from .temperature import scheduled_temperature

SIMCLR_VIEW = ViewSpec(crop_scale=PAPER_CROP, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Normalised-temperature cross-entropy: each view must pick its partner among the other
    2N - 1 embeddings of the (gathered) batch."""
    return nt_xent_terms(z1, z2, temperature)[0]


def nt_xent_terms(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """`nt_xent`, and the loss of each of the 2N embeddings (z1's rows first)."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    z_all = gather_with_grad(z)
    # gathered layout: [z1_r0, z2_r0, z1_r1, z2_r1, ...]; our block starts at rank * 2n
    offset = rank() * 2 * n
    logits = z @ z_all.t() / temperature
    own = torch.arange(2 * n, device=z.device) + offset
    logits[torch.arange(2 * n, device=z.device), own] = float("-inf")
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device) + offset
    return cross_entropy_terms(logits, partner)


@register_method(SimCLRConfig, views=(SIMCLR_VIEW, SIMCLR_VIEW), self_supervised=True)
class SimCLR(TwoViewMethod):
    name = "simclr"

    def __init__(
        self,
        backbone: nn.Module,
        cfg: SimCLRConfig,
        views: tuple[ViewSpec, ViewSpec] = (SIMCLR_VIEW, SIMCLR_VIEW),
    ) -> None:
        super().__init__()
        self.views = views
        dim = backbone.feature_dim  # type: ignore[attr-defined]
        self.backbone = backbone
        self.projector = mlp(dim, cfg.hidden_dim or dim, cfg.proj_dim)
        self.temperature = cfg.temperature
        # a plugin's settings without the key (their own class) train at a fixed temperature
        self.schedule = getattr(cfg, "temperature_schedule", None)  # Kukleva et al. 2023

    def temperature_at(self, ctx: StepContext) -> float:
        return scheduled_temperature(self.schedule, self.temperature, ctx.epoch, ctx.epochs)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        v1, v2 = self.two_views(images, ctx)
        z = self.projector(self.backbone(torch.cat([v1, v2])))
        z1, z2 = z.float().chunk(2)
        tau = self.temperature_at(ctx)
        loss, rows = nt_xent_terms(z1, z2, tau)
        n = len(z1)
        # each image's loss: the mean of its two views' rows (their mean is the batch loss)
        logs = {"temperature": tau} if self.schedule is not None else {}
        return StepOutput(loss, z1, logs=logs, losses=0.5 * (rows[:n] + rows[n:]))

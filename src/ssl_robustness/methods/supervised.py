"""Supervised learning: backbone + linear head, with long-tail losses and samplers."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import SupervisedConfig
from .augment import LABELLED_VIEW, ViewSpec, augment
from .base import Method, StepContext, StepOutput
from .longtail_losses import LongTailLoss
from .registry import MethodSetup, register_method

SUPERVISED_VIEW = LABELLED_VIEW  # supervised pretraining trains on the labelled view


class NormedLinear(nn.Module):
    """Cosine classifier used with LDAM (logits in [-1, 1], scaled by the loss)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim).uniform_(-1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).t()


@register_method(SupervisedConfig, views=(SUPERVISED_VIEW,), self_supervised=False)
class Supervised(Method):
    name = "supervised"

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        loss: LongTailLoss,
        view: ViewSpec = SUPERVISED_VIEW,
        backbone_lr_mult: float = 1.0,
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__()
        self.backbone, self.loss_fn, self.view = backbone, loss, view
        dim = backbone.feature_dim  # type: ignore[attr-defined]
        self.head = (
            NormedLinear(dim, num_classes)
            if loss.kind == "ldam_drw"
            else nn.Linear(dim, num_classes)
        )
        self.backbone_lr_mult, self.freeze_backbone = backbone_lr_mult, freeze_backbone
        if freeze_backbone:
            for p in backbone.parameters():
                p.requires_grad_(False)

    @classmethod
    def from_config(
        cls,
        backbone: nn.Module,
        cfg: SupervisedConfig,
        num_classes: int,
        counts: np.ndarray,
        view: ViewSpec = SUPERVISED_VIEW,
    ) -> Supervised:
        loss = LongTailLoss(
            cfg.loss,
            counts,
            beta=cfg.cb_beta,
            tau=cfg.tau,
            max_margin=cfg.ldam_max_margin,
            scale=cfg.ldam_scale,
            drw_start=cfg.drw_start,
        )
        return cls(backbone, num_classes, loss, view)

    @classmethod
    def from_setup(
        cls, backbone: nn.Module, cfg: SupervisedConfig, setup: MethodSetup
    ) -> Supervised:
        return cls.from_config(backbone, cfg, setup.num_classes, setup.class_counts, setup.views[0])

    def train(self, mode: bool = True) -> Supervised:
        super().train(mode)
        if self.freeze_backbone:  # a frozen backbone keeps its BN statistics
            self.backbone.eval()
        return self

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        x = augment(images, self.view, ctx.generator)
        logits = self.logits(x)
        loss = self.loss_fn(logits, labels, ctx.progress)
        acc = (logits.argmax(1) == labels).float().mean().detach()
        return StepOutput(loss, None, {"train_acc": acc})

    def param_groups(self) -> list[dict]:
        groups = [{"params": list(self.head.parameters())}]
        if not self.freeze_backbone:
            groups.append(
                {"params": list(self.backbone.parameters()), "lr_mult": self.backbone_lr_mult}
            )
        return groups

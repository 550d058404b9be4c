"""What every method shares: the step protocol (from `engine.step`), momentum helpers."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.step import Method, StepContext, StepOutput
from .augment import ViewSpec, augment

if TYPE_CHECKING:
    from typing_extensions import Self

    from .registry import MethodSetup

__all__ = [
    "Method",
    "MomentumTargets",
    "StepContext",
    "StepOutput",
    "TwoViewMethod",
    "cosine_momentum",
    "cross_entropy_terms",
    "frozen_copy",
    "momentum_update",
    "symmetric_output",
]


class TwoViewMethod(Method):
    """A method trained on two augmented views of each image (the SSL methods)."""

    views: tuple[ViewSpec, ...]

    @classmethod
    def from_setup(cls, backbone: nn.Module, cfg: Any, setup: MethodSetup) -> Self:
        """Built from its settings and the study's views, which is all most SSL methods need
        (a method that needs more, e.g. MoCo's queue and the train size, overrides this)."""
        return cls(backbone, cfg, setup.views)  # type: ignore[call-arg]

    def two_views(
        self, images: torch.Tensor, ctx: StepContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views of `images`, drawn in order from the step's generator."""
        v1 = augment(images, self.views[0], ctx.generator)
        v2 = augment(images, self.views[1], ctx.generator)
        return v1, v2


def symmetric_output(
    loss_12: torch.Tensor, loss_21: torch.Tensor, embedding: torch.Tensor
) -> StepOutput:
    """A symmetrised two-view loss from its per-example halves (view 1 against view 2 and back):
    the batch loss, and each image's own loss (their mean), which rwSAM re-weights."""
    loss = 0.5 * (loss_12.mean() + loss_21.mean())
    return StepOutput(loss, embedding, losses=0.5 * (loss_12 + loss_21))


def cross_entropy_terms(
    logits: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean cross-entropy exactly as `F.cross_entropy` gives it (a mean of the per-row
    losses may differ in the last bit, and plain training stays bit-identical), and each row's."""
    return F.cross_entropy(logits, target), F.cross_entropy(logits, target, reduction="none")


class MomentumTargets:
    """Momentum (target) copies of a method's online networks, e.g. MoCo's key encoder and
    BYOL's target network: `add_targets(backbone_k="backbone")` makes the frozen copies,
    `update_targets(m)` moves each toward its online network after a step."""

    _targets: tuple[tuple[str, str], ...] = ()

    def add_targets(self, **target_of: str) -> None:
        for target, online in target_of.items():
            setattr(self, target, frozen_copy(getattr(self, online)))
        self._targets = (*self._targets, *target_of.items())

    def update_targets(self, momentum: float) -> None:
        for target, online in self._targets:
            momentum_update(getattr(self, online), getattr(self, target), momentum)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy that receives no gradient: the momentum (target) network."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def momentum_update(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """target = m * target + (1 - m) * online, for parameters; buffers are copied."""
    for po, pt in zip(online.parameters(), target.parameters(), strict=True):
        pt.mul_(momentum).add_(po.detach(), alpha=1.0 - momentum)
    for bo, bt in zip(online.buffers(), target.buffers(), strict=True):
        bt.copy_(bo)


def cosine_momentum(base: float, progress: float) -> float:
    """BYOL's schedule: from `base` up to 1 along a cosine over training."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * progress) + 1.0) / 2.0

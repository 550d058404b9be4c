"""What every method shares: the step protocol (from `engine.step`), momentum helpers."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ..engine.step import Method, StepContext, StepOutput

__all__ = [
    "Method",
    "StepContext",
    "StepOutput",
    "cosine_momentum",
    "frozen_copy",
    "momentum_update",
]


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

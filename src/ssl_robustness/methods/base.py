"""What every method shares: the step interface, the collapse statistic, momentum helpers."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

COLLAPSE_RATIO = 0.1  # std of l2-normalised outputs below 0.1 / sqrt(d): collapsed


@dataclass
class StepContext:
    """What the loop hands a training step besides the batch."""

    generator: torch.Generator  # drives every augmentation: saved in checkpoints
    progress: float  # fraction of training done, in [0, 1)


@dataclass
class StepOutput:
    loss: torch.Tensor
    embedding: torch.Tensor | None = None  # the output watched for collapse (SSL methods)
    # extra per-step values; tensors are read (a device sync) only on the steps that log
    logs: dict[str, float | torch.Tensor] = field(default_factory=dict)


class Method(nn.Module):
    """A backbone and the heads, augmentations and loss that train it. `forward` is one
    training step, so DDP can wrap a method like any module."""

    name = "method"
    backbone: nn.Module

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """Trainable parameter groups; a group may set `lr_mult` or `fixed_lr`."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def after_step(self, progress: float) -> None:
        """Called after each optimizer step (momentum encoders update here)."""


def collapse_std(z: torch.Tensor) -> float:
    """Mean per-dimension std of l2-normalised outputs: about 1/sqrt(d) when healthy, 0 when
    every input maps to one point (SimSiam's collapse check, as solo-learn logs it)."""
    return float(F.normalize(z.detach().float(), dim=1).std(dim=0).mean())


def collapse_ratio(std: float, dim: int) -> float:
    return std * math.sqrt(dim)


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

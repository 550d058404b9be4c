"""The step protocol between the training loop and what it trains: a `Method` is a module
whose `forward` is one training step, and the collapse statistic the loop watches."""

from __future__ import annotations

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
    # each image's position in the training set (`ArrayBatches.indices`): the key of a
    # method's per-image state (BCL's momentum losses); None where no loop gives one
    positions: torch.Tensor | None = None
    # the step's 0-based epoch and the run's epochs: what a per-epoch schedule reads (the
    # temperature schedule's, as its authors step it)
    epoch: int = 0
    epochs: int = 1


@dataclass
class StepOutput:
    loss: torch.Tensor
    embedding: torch.Tensor | None = None  # the output watched for collapse (SSL methods)
    # extra per-step values; tensors are read (a device sync) only on the steps that log
    logs: dict[str, float | torch.Tensor] = field(default_factory=dict)
    losses: torch.Tensor | None = None  # per-example losses, mean = loss (rwSAM weighs them)


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

    def begin_epoch(self, epoch: int) -> None:
        """Called before each epoch's first step, also the first epoch after a resume (SDCLR
        re-prunes here, BCL sets each image's augmentation strength): what it sets must follow
        from the checkpointed state alone, so that a resumed run equals an uninterrupted one."""


def collapse_std(z: torch.Tensor) -> float:
    """Mean per-dimension std of l2-normalised outputs: about 1/sqrt(d) when healthy, 0 when
    every input maps to one point (SimSiam's collapse check, as solo-learn logs it)."""
    return float(F.normalize(z.detach().float(), dim=1).std(dim=0).mean())


def collapse_ratio(std: float, dim: int) -> float:
    return std * math.sqrt(dim)

"""BCL (Zhou, Yao, Wang, Han, Zhang, ICML 2022, "Contrastive Learning with Boosted
Memorization"): SimCLR where the images a network memorises least get the strongest
augmentation. Deep networks memorise frequent patterns first, so an image whose contrastive loss
stays high is likely a rare class's: BCL ranks images by a momentum-averaged loss and boosts
their augmentation (RandAugment, see `randaugment`), without labels.

As in the official code (MediaBrain-SJTU/BCL: train.py, data/memoboosted_cifar100.py):
- each image's momentum loss is its first loss, then beta x before + (1 - beta) x its loss
  at each step it is in (beta 0.95);
- at each epoch's start its strength is w = z / max|z| / 2 + 1/2 in [0, 1], z its momentum
  loss minus the mean over the images seen so far (the code's division by the std cancels);
  an image without a loss yet has the code's initial w = 0 (its `momentum_weight` starts at
  zeros), as every image has in the first epoch; the code's loader sees every image each epoch,
  ours drops the last partial batch, so a few images wait an epoch longer for theirs;
- the strength is the image's, not a view's: both of its views get RandAugment with k = 1
  operation at probability w and one magnitude 30 x w x u of 30, u ~ U(0, 1) drawn once per
  image (the code builds one transform per image and applies it to both views); which
  operation, whether it applies and its sign are drawn per view, as the code's.
The per-image state is two buffers indexed by the image's position in the training set
(`StepContext.positions`), so checkpoints hold it and a resumed run equals an uninterrupted one;
under DDP every process applies every process's losses, so all hold the same state. The base
views are this project's SimCLR's, so Δ against simclr isolates the boosting (the official code's
CIFAR view crops from 0.1 with jitter 0.4). The cost over SimCLR: the RandAugment operations
(on the device, batched), no extra forward pass.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import BCLConfig
from ..engine.distributed import gather
from .augment import ViewSpec, augment_pixels, normalize_into_memory_format
from .base import StepContext, StepOutput
from .randaugment import draw_magnitude, rand_augment
from .registry import MethodSetup, register_method
from .simclr import SIMCLR_VIEW, SimCLR, nt_xent_terms


@torch.no_grad()
def momentum_update(
    memory: torch.Tensor,
    seen: torch.Tensor,
    positions: torch.Tensor,
    losses: torch.Tensor,
    beta: float,
) -> None:
    """memory[p] = loss where the image is new, beta x memory[p] + (1 - beta) x loss after."""
    old = memory[positions]
    new = torch.where(seen[positions], beta * old + (1 - beta) * losses.to(old), losses.to(old))
    memory[positions] = new
    seen[positions] = True


@torch.no_grad()
def memorization_strength(memory: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Each image's augmentation strength in [0, 1] from its momentum loss (the module's rule):
    1 for the least memorised (highest loss), 0 for the best memorised when it is as far below
    the mean as that one is above; 0 (the official code's initial value) for an image with no
    loss yet, so 0 everywhere before any loss is known.

    Momentum losses 1.1, 2.0 and 3.8 (mean 2.3, so z = -1.2, -0.3, 1.5, max |z| = 1.5):
    >>> memorization_strength(torch.tensor([1.1, 2.0, 3.8]), torch.ones(3, dtype=torch.bool))
    tensor([0.1000, 0.4000, 1.0000])
    """
    strength = torch.zeros_like(memory)
    if not bool(seen.any()):
        return strength
    z = memory[seen] - memory[seen].mean()
    top = z.abs().max()
    strength[seen] = z / top / 2 + 0.5 if top > 0 else torch.full_like(z, 0.5)
    return strength


@register_method(BCLConfig, views=(SIMCLR_VIEW, SIMCLR_VIEW), self_supervised=True)
class BCL(SimCLR):
    name = "bcl"

    def __init__(
        self,
        backbone: nn.Module,
        cfg: BCLConfig,
        train_size: int,
        views: tuple[ViewSpec, ViewSpec] = (SIMCLR_VIEW, SIMCLR_VIEW),
    ) -> None:
        super().__init__(backbone, cfg, views)
        self.beta, self.ops = cfg.loss_momentum, cfg.augment_ops
        self.max_strength = cfg.max_strength
        # per image of the training set, by position: saved in checkpoints
        self.register_buffer("momentum_loss", torch.zeros(train_size))
        self.register_buffer("seen", torch.zeros(train_size, dtype=torch.bool))
        # set at each epoch's start from the two above, so not saved
        self.register_buffer("strength", torch.zeros(train_size), persistent=False)
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    @classmethod
    def from_setup(cls, backbone: nn.Module, cfg: BCLConfig, setup: MethodSetup) -> BCL:
        return cls(backbone, cfg, setup.train_size, setup.views)  # type: ignore[arg-type]

    def begin_epoch(self, epoch: int) -> None:
        self.strength.copy_(memorization_strength(self.momentum_loss, self.seen))

    def boosted_view(
        self,
        images: torch.Tensor,
        spec: ViewSpec,
        strength: torch.Tensor,
        magnitude: torch.Tensor,
        g: torch.Generator,
    ) -> torch.Tensor:
        """One view: SimCLR's augmentation, then RandAugment at each image's own strength and
        magnitude (the same for both of its views)."""
        x = augment_pixels(images, spec, g)
        x = rand_augment(x, strength, magnitude, g, ops=self.ops)
        return normalize_into_memory_format(x)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        if ctx.positions is None:
            raise ValueError("BCL needs each image's position in the training set (ctx.positions)")
        strength = self.strength[ctx.positions]
        magnitude = draw_magnitude(strength, ctx.generator, self.max_strength)  # per image
        v1 = self.boosted_view(images, self.views[0], strength, magnitude, ctx.generator)
        v2 = self.boosted_view(images, self.views[1], strength, magnitude, ctx.generator)
        z = self.projector(self.backbone(torch.cat([v1, v2])))
        z1, z2 = z.float().chunk(2)
        tau = self.temperature_at(ctx)
        loss, rows = nt_xent_terms(z1, z2, tau)
        n = len(z1)
        losses = 0.5 * (rows[:n] + rows[n:])
        if self._pending is None:  # the step's first pass (SAM's second is at other weights)
            self._pending = (ctx.positions, losses.detach())
        logs = {"temperature": tau} if self.schedule is not None else {}
        logs["strength"] = strength.mean()
        return StepOutput(loss, z1, logs=logs, losses=losses)

    def after_step(self, progress: float) -> None:
        """The step's losses into the momentum losses, every process's on every process."""
        if self._pending is None:
            return
        positions, losses = self._pending
        self._pending = None
        positions, losses = gather(positions), gather(losses.float())
        momentum_update(self.momentum_loss, self.seen, positions, losses, self.beta)

"""The training loop's settings (`pretrain`), the network (`backbone`), the study-wide
augmentation adjustments and SAM."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
)

from .base import Strict


class OptimizerConfig(Strict):
    name: Literal["sgd", "lars", "adamw"] = "sgd"
    """Optimizer: sgd, lars or adamw."""
    lr: float = Field(0.05, gt=0)
    """Base learning rate (warm-up then cosine decay over the steps)."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """Momentum of sgd and lars (adamw: beta1)."""
    nesterov: bool = False
    """Nesterov momentum (sgd)."""
    weight_decay: float = Field(5e-4, ge=0)
    """Weight decay."""


class TrainConfig(Strict):
    """Settings of the one training loop; a method may override epochs, batch size and lr."""

    epochs: int = Field(20, ge=1)
    """Pretraining epochs (a method may override)."""
    batch_size: int = Field(128, ge=2)
    """Images per step, over all processes (a method may override)."""
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    """The optimizer and its settings."""
    warmup_epochs: float = Field(0.0, ge=0)
    """Epochs of linear learning-rate warm-up before the cosine decay (may be fractional)."""
    grad_clip: float | None = Field(None, gt=0)
    """Clip the gradient norm to this value; None: no clipping."""
    checkpoint_every: int = Field(5, ge=1)
    """Write a resumable checkpoint every this many epochs (and at the end)."""
    log_every: int = Field(10, ge=1)
    """Write a row to steps.csv every this many steps (and at each epoch's last step)."""


class BackboneConfig(Strict):
    """resnet18 / resnet50 (torchvision), resnet_tiny (reduced, CPU-sized) or timm:<name>."""

    name: str = "resnet_tiny"
    """The network: resnet18, resnet50 (torchvision), resnet_tiny (reduced, CPU-sized) or
    timm:<name> (needs the timm extra)."""
    width: int = Field(16, ge=4)
    """resnet_tiny: channels of the first stage (doubling at each stage)."""
    layers: list[int] = Field(default_factory=lambda: [1, 1, 1, 1])
    """resnet_tiny: residual blocks in each of the 4 stages."""
    small_stem: bool | None = None
    """3x3 stride-1 stem without max-pool; None: automatic, on for images <= 64 px."""

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ("resnet18", "resnet50", "resnet_tiny") and not v.startswith("timm:"):
            raise ValueError("must be resnet18, resnet50, resnet_tiny or timm:<model name>")
        if v == "timm:":
            raise ValueError("timm: needs a model name, e.g. timm:resnet18")
        return v

    @field_validator("layers")
    @classmethod
    def _four_stages(cls, v: list[int]) -> list[int]:
        if len(v) != 4 or min(v) < 1:
            raise ValueError("needs 4 block counts, each >= 1, e.g. [1, 1, 1, 1]")
        return v


class AugmentationConfig(Strict):
    """Study-wide adjustments of every method's augmentations (None keeps a method's default).

    Low-resolution or orientation-sensitive data (digits, text, some medical images) need
    gentler crops than ImageNet's 0.2 (or 0.08) lower bound, and no flips.
    """

    crop_min_scale: float | None = Field(None, gt=0, le=1)
    """Lower bound of the random-resized-crop scale for every method; None: each method's
    default."""
    flip: bool = True
    """Random horizontal flips; false for orientation-sensitive data (digits, text)."""
    color: bool = True
    """Colour jitter and random grayscale (where a method uses them)."""


class SAMConfig(Strict):
    """Sharpness-aware minimisation around any method's step (Foret et al. 2021; engine/sam.py),
    and rwSAM (Liu et al. 2022): the inner maximisation re-weighted towards rare examples."""

    rho: float = Field(0.05, gt=0)
    """Radius of the weight perturbation (Foret et al. use 0.05; adaptive SAM needs larger)."""
    adaptive: bool = False
    """ASAM (Kwon et al. 2021): the perturbation scaled per weight by T = |w|:
    e = rho T^2 g / ||T g||."""
    weights: Literal["none", "kde", "label"] = "none"
    """Per-example weights of the inner maximisation only: none (plain SAM), kde (rwSAM: inverse
    kernel density of each example's embedding, no labels) or label (oracle inverse class
    frequency, an ablation)."""
    alpha: float = Field(1.0, ge=0)
    """Weights are density ** -alpha (kde) or class frequency ** -alpha (label), normalised to
    mean 1 over the batch."""
    memory: int = Field(4096, ge=1)
    """kde: how many recent L2-normalised embeddings of this epoch the density is estimated
    against (emptied at each epoch's start, so it never holds an image's own earlier
    embedding, and a resumed run equals an uninterrupted one)."""
    bandwidth: float | None = Field(None, gt=0)
    """kde: Gaussian kernel width; None: bandwidth_scale x the median distance of the batch to
    the memory (the median heuristic), re-estimated every step."""
    bandwidth_scale: float = Field(0.25, gt=0)
    """kde, bandwidth None: the kernel width as a fraction of the median distance. Distances of
    high-dimensional embeddings concentrate near their median, so the plain median heuristic
    (1.0) leaves the weights almost flat: on 128-d unit vectors of 5 frequent and 5 rare
    (10x) clusters, 1.0 gave the rare 1.04x the mean weight, 0.3 gave 2.5x, 0.2 gave 4.8x."""

"""MoCo v2 (Chen et al. 2020): momentum key encoder, a queue of negatives, InfoNCE, and
shuffle-BN (across processes, or emulated on one: see `shuffle_bn`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MocoV2Config
from ..engine.distributed import (
    broadcast,
    gather,
    is_distributed,
    shuffled_slice,
    unshuffled_slice,
    world_size,
)
from ..models.heads import mlp
from .augment import ViewSpec
from .base import (
    MomentumTargets,
    StepContext,
    StepOutput,
    TwoViewMethod,
    cross_entropy_terms,
)
from .registry import MethodSetup, register_method
from .shuffle_bn import key_permutation, split_batchnorm, split_sizes
from .temperature import scheduled_temperature

MOCOV2_VIEW = ViewSpec()  # crops from 0.2 of the image, jitter, grey, blur (SimSiam's too)


def info_nce(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Cross-entropy of picking the positive key k among it and the queue's negatives.

    q, k: (B, D) l2-normalised; queue: (D, K) l2-normalised, no gradient.
    >>> q = k = F.normalize(torch.randn(4, 8), dim=1)
    >>> info_nce(q, k, F.normalize(torch.randn(8, 16), dim=0), 0.2) >= 0
    tensor(True)
    """
    return info_nce_terms(q, k, queue, temperature)[0]


def info_nce_terms(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """`info_nce`, and the loss of each query."""
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue
    logits = torch.cat([pos, neg], dim=1) / temperature
    target = torch.zeros(len(q), dtype=torch.long, device=q.device)
    return cross_entropy_terms(logits, target)


@register_method(MocoV2Config, views=(MOCOV2_VIEW, MOCOV2_VIEW), self_supervised=True)
class MocoV2(MomentumTargets, TwoViewMethod):
    name = "mocov2"

    def __init__(
        self,
        backbone: nn.Module,
        cfg: MocoV2Config,
        train_size: int,
        views: tuple[ViewSpec, ViewSpec] = (MOCOV2_VIEW, MOCOV2_VIEW),
    ) -> None:
        super().__init__()
        self.views = views
        dim = backbone.feature_dim  # type: ignore[attr-defined]
        self.backbone = backbone
        self.projector = mlp(dim, cfg.hidden_dim or dim, cfg.proj_dim, bn_hidden=cfg.projector_bn)
        self.add_targets(backbone_k="backbone", projector_k="projector")
        self.temperature, self.momentum, self.symmetric = (
            cfg.temperature,
            cfg.momentum,
            cfg.symmetric,
        )
        self.splits = cfg.shuffle_bn_splits
        # a plugin's settings without the key (their own class) train at a fixed temperature
        self.schedule = getattr(cfg, "temperature_schedule", None)  # Kukleva et al. 2023
        # a queue longer than half the data would hold the current images' own older keys
        size = max(1, min(cfg.queue_size, train_size // 2))
        self.register_buffer("queue", F.normalize(torch.randn(cfg.proj_dim, size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @classmethod
    def from_setup(cls, backbone: nn.Module, cfg: MocoV2Config, setup: MethodSetup) -> MocoV2:
        return cls(backbone, cfg, setup.train_size, setup.views)  # type: ignore[arg-type]

    def _split(self) -> int:
        """Sub-batches per process: one under DDP, where the shuffle across processes does
        the job (and a SyncBatchNorm layer would undo it for the keys)."""
        return 1 if is_distributed() else self.splits

    def _query(self, x: torch.Tensor) -> torch.Tensor:
        """Queries normalised over in-order sub-batches (the whole batch under DDP)."""
        splits = self._split()
        if len(split_sizes(len(x), splits)) == 1:
            return F.normalize(self.projector(self.backbone(x)), dim=1)
        with split_batchnorm(self.backbone, splits), split_batchnorm(self.projector, splits):
            return F.normalize(self.projector(self.backbone(x)), dim=1)

    def _encode_key(self, x: torch.Tensor, splits: int) -> torch.Tensor:
        with split_batchnorm(self.backbone_k, splits), split_batchnorm(self.projector_k, splits):
            return F.normalize(self.projector_k(self.backbone_k(x)), dim=1)

    @torch.no_grad()
    def _key(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Keys batch-normalised over other samples than their queries were: a permutation
        of the global batch (every process draws it, rank 0's is used), each process
        encoding its slice of it, or on one process shuffled sub-batches."""
        if is_distributed():
            perm = torch.randperm(world_size() * len(x), generator=generator)
            perm = broadcast(perm.to(x.device))
            return unshuffled_slice(self._encode_key(shuffled_slice(x, perm), 1), perm)
        sizes = split_sizes(len(x), self.splits)
        if len(sizes) == 1:
            return F.normalize(self.projector_k(self.backbone_k(x)), dim=1)
        perm = key_permutation(sizes, generator).to(x.device)
        return unshuffled_slice(self._encode_key(shuffled_slice(x, perm), self.splits), perm)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest entries with `keys` (from every process), wrapping around."""
        keys = gather(keys.float())
        size = self.queue.shape[1]
        keys = keys[-size:]
        idx = (self.queue_ptr + torch.arange(len(keys), device=keys.device)) % size
        self.queue[:, idx] = keys.t().to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + len(keys)) % size)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, ctx: StepContext) -> StepOutput:
        v1, v2 = self.two_views(images, ctx)
        queue = self.queue.clone().detach()
        tau = scheduled_temperature(self.schedule, self.temperature, ctx.epoch, ctx.epochs)
        q1, k2 = self._query(v1), self._key(v2, ctx.generator)
        loss, losses = info_nce_terms(q1, k2, queue, tau)
        keys = [k2]
        if self.symmetric:
            q2, k1 = self._query(v2), self._key(v1, ctx.generator)
            loss_21, losses_21 = info_nce_terms(q2, k1, queue, tau)
            loss, losses = 0.5 * (loss + loss_21), 0.5 * (losses + losses_21)
            keys.append(k1)
        self.enqueue(torch.cat(keys))
        logs = {"temperature": tau} if self.schedule is not None else {}
        return StepOutput(loss, q1, logs=logs, losses=losses)

    def after_step(self, progress: float) -> None:
        self.update_targets(self.momentum)

"""Per-example weights of rwSAM's inner maximisation (Liu et al. 2022), by source:

- `kde`: no labels. Each example's L2-normalised embedding gets a Gaussian kernel density
  against a memory of this epoch's earlier embeddings and the global batch (leave-one-out: an
  example never counts itself; the memory is emptied as each epoch ends, so it never holds an
  image's own embedding from an earlier epoch, which would be its nearest neighbour and
  deflate exactly the rare images' weights; one density estimate, one bandwidth, over the
  global batch on every process, each keeping its own rows);
  weight = density ** -alpha, so examples in sparse regions (rare classes, presumably) weigh
  more. Bandwidth: given, or `bandwidth_scale` x the median distance of the batch to the
  memory (a scaled median heuristic), which stays on the scale of the distances whatever the
  embedding's dimension (Scott's and Silverman's rules, per dimension, shrink the kernel far
  below the distances of 128-d unit vectors, leaving each point's density to its one nearest
  neighbour); the scale is below 1 because those distances concentrate near their median,
  where a kernel as wide as the median tells dense from sparse regions apart hardly at all.
- `label`: oracle inverse class frequency of the training subset, ** alpha (an ablation).

Weights are normalised to mean 1 over the global batch, so the weighted inner loss is on the
scale of the unweighted one and rho keeps its meaning.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..config import SAMConfig
from ..engine.distributed import gather, rank
from ..engine.sam import ExampleWeights
from ..engine.step import StepOutput


def log_mean_exp(log_w: torch.Tensor) -> torch.Tensor:
    """log(mean(exp(log_w))), computed in log space."""
    return torch.logsumexp(log_w, 0) - math.log(len(log_w))


def mean_one(log_w: torch.Tensor) -> torch.Tensor:
    """exp(log_w) scaled to mean 1 over every process's batch."""
    return torch.exp(log_w - log_mean_exp(gather(log_w)))


def median_bandwidth(d2: torch.Tensor) -> torch.Tensor:
    """The median of the finite pairwise distances (entries excluded are +inf)."""
    d = d2[torch.isfinite(d2)].clamp_min(0).sqrt()
    return d.median().clamp_min(1e-6) if d.numel() else torch.tensor(1.0, device=d2.device)


def kde_log_weights(
    x: torch.Tensor,
    reference: torch.Tensor,
    alpha: float,
    bandwidth: float | None = None,
    self_index: torch.Tensor | None = None,
    bandwidth_scale: float = 1.0,
) -> torch.Tensor:
    """-alpha * log density of each row of `x` under a Gaussian kernel on `reference` (up to
    a constant, which mean-one normalisation removes); row i skips reference row
    self_index[i] (itself). Kernel width: `bandwidth`, else `bandwidth_scale` x the median
    distance."""
    d2 = torch.cdist(x, reference).square()
    if self_index is not None:
        d2[torch.arange(len(x), device=x.device), self_index] = float("inf")
    if bandwidth:
        h = torch.as_tensor(bandwidth, device=x.device)
    else:
        h = bandwidth_scale * median_bandwidth(d2)
    log_density = torch.logsumexp(-d2 / (2 * h**2), dim=1)
    return -alpha * log_density


class KDEWeights(ExampleWeights):
    """Inverse kernel density of each example's embedding against a queue of recent ones."""

    def __init__(
        self, alpha: float, memory: int, bandwidth: float | None = None, scale: float = 0.25
    ) -> None:
        self.alpha, self.memory, self.bandwidth, self.scale = alpha, memory, bandwidth, scale
        self.queue: torch.Tensor | None = None

    @torch.no_grad()
    def __call__(self, out: StepOutput, labels: torch.Tensor) -> torch.Tensor:
        if out.embedding is None:
            raise ValueError("sam.weights 'kde' needs a method that outputs an embedding (SSL)")
        x = F.normalize(out.embedding.detach().float(), dim=1)
        everyone = gather(x)  # the global batch: one density estimate on every process
        held = 0 if self.queue is None else len(self.queue)
        reference = everyone if self.queue is None else torch.cat([self.queue, everyone])
        own = held + torch.arange(len(everyone), device=x.device)
        log_w = kde_log_weights(everyone, reference, self.alpha, self.bandwidth, own, self.scale)
        self.queue = reference[-self.memory :]
        mine = slice(rank() * len(x), (rank() + 1) * len(x))
        return torch.exp(log_w[mine] - log_mean_exp(log_w))  # mean one over the global batch

    def new_epoch(self) -> None:
        self.queue = None


class LabelWeights(ExampleWeights):
    """Oracle weights: the true class's frequency in the training subset ** -alpha."""

    def __init__(self, class_counts: np.ndarray, alpha: float) -> None:
        counts = torch.as_tensor(np.asarray(class_counts), dtype=torch.float64).clamp_min(1)
        self.log_freq = (counts / counts.sum()).log().float()
        self.alpha = alpha

    @torch.no_grad()
    def __call__(self, out: StepOutput, labels: torch.Tensor) -> torch.Tensor:
        log_w = -self.alpha * self.log_freq.to(labels.device)[labels.long()]
        return mean_one(log_w)


def example_weights(cfg: SAMConfig | None, class_counts: np.ndarray) -> ExampleWeights | None:
    """The weight source `cfg.weights` names, for a training set of `class_counts` (the label
    source's frequencies; only their sum for kde); None for plain SAM (or no SAM)."""
    if cfg is None or cfg.weights == "none":
        return None
    if cfg.weights == "kde":  # the memory holds this epoch's embeddings only (new_epoch)
        return KDEWeights(cfg.alpha, cfg.memory, cfg.bandwidth, cfg.bandwidth_scale)
    return LabelWeights(class_counts, cfg.alpha)

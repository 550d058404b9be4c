"""Supervised losses for long-tailed data, each a function of logits, labels and class counts."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def class_balanced_weights(counts: np.ndarray, beta: float = 0.9999) -> torch.Tensor:
    """Cui et al. 2019: w_c proportional to (1 - beta) / (1 - beta ** n_c), summing to C."""
    counts = np.asarray(counts, dtype=np.float64)
    w = (1.0 - beta) / (1.0 - np.power(beta, np.maximum(counts, 1)))
    return torch.tensor(w / w.sum() * len(counts), dtype=torch.float32)


def log_prior(counts: np.ndarray) -> torch.Tensor:
    counts = np.asarray(counts, dtype=np.float64)
    return torch.tensor(np.log(np.maximum(counts, 1) / counts.sum()), dtype=torch.float32)


def ldam_margins(counts: np.ndarray, max_margin: float = 0.5) -> torch.Tensor:
    """Cao et al. 2019: m_c proportional to n_c ** -1/4, the largest equal to `max_margin`."""
    m = 1.0 / np.power(np.maximum(np.asarray(counts, dtype=np.float64), 1), 0.25)
    return torch.tensor(m * (max_margin / m.max()), dtype=torch.float32)


class LongTailLoss(nn.Module):
    """ce | cb (class-balanced CE) | balanced_softmax | logit_adjusted | ldam_drw."""

    def __init__(
        self,
        kind: str,
        counts: np.ndarray,
        *,
        beta: float = 0.9999,
        tau: float = 1.0,
        max_margin: float = 0.5,
        scale: float = 30.0,
        drw_start: float = 0.8,
    ) -> None:
        super().__init__()
        self.kind, self.tau, self.scale, self.drw_start = kind, tau, scale, drw_start
        self.register_buffer("cb_weights", class_balanced_weights(counts, beta))
        self.register_buffer("log_prior", log_prior(counts))
        self.register_buffer("margins", ldam_margins(counts, max_margin))

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, progress: float = 0.0
    ) -> torch.Tensor:
        logits = logits.float()
        if self.kind == "ce":
            return F.cross_entropy(logits, labels)
        if self.kind == "cb":
            return F.cross_entropy(logits, labels, weight=self.cb_weights)
        if self.kind == "balanced_softmax":  # Ren et al. 2020: train on logits + log prior
            return F.cross_entropy(logits + self.log_prior, labels)
        if self.kind == "logit_adjusted":  # Menon et al. 2021
            return F.cross_entropy(logits + self.tau * self.log_prior, labels)
        if self.kind == "ldam_drw":
            margin = F.one_hot(labels, logits.shape[1]) * self.margins[labels].unsqueeze(1)
            weight = self.cb_weights if progress >= self.drw_start else None
            return F.cross_entropy(self.scale * (logits - margin), labels, weight=weight)
        raise ValueError(f"unknown loss {self.kind!r}")

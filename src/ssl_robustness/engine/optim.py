"""Optimizers (SGD, LARS, AdamW) and the warmup + cosine schedule."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from ..config import OptimizerConfig


class LARS(torch.optim.Optimizer):
    """SGD with layer-wise trust ratios (You et al. 2017); biases and norms skip adaptation and
    weight decay, as in SimCLR/BYOL."""

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
    ) -> None:
        super().__init__(
            params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta}
        )

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if p.ndim > 1:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.norm(p), torch.norm(grad)
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0),
                        group["eta"] * w_norm / g_norm,
                        torch.ones_like(w_norm),
                    )
                    grad = grad.mul(trust)
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = grad.clone()
                else:
                    buf.mul_(group["momentum"]).add_(grad)
                p.add_(buf, alpha=-group["lr"])
        return loss


def build_optimizer(groups: list[dict], cfg: OptimizerConfig, lr: float) -> torch.optim.Optimizer:
    """`groups` may carry `lr_mult` (scales lr) and `fixed_lr` (no schedule) keys."""
    param_groups = []
    for g in groups:
        pg = {k: v for k, v in g.items() if k not in ("lr_mult",)}
        pg["lr"] = lr * g.get("lr_mult", 1.0)
        pg.setdefault("fixed_lr", False)
        param_groups.append(pg)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            param_groups,
            lr=lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov,
            weight_decay=cfg.weight_decay,
        )
    if cfg.name == "lars":
        return LARS(param_groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=cfg.weight_decay)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> LambdaLR:
    """Linear warmup then cosine decay to zero, per step; `fixed_lr` groups stay constant."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    lambdas = [(lambda s: 1.0) if g.get("fixed_lr") else factor for g in optimizer.param_groups]
    return LambdaLR(optimizer, lambdas)

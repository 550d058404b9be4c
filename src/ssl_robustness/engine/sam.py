"""Sharpness-aware minimisation (Foret et al. 2021) as a hook of the one training loop, for any
method; adaptive SAM (Kwon et al. 2021); rwSAM (Liu et al. 2022).

One step, `begin` then `backward` in place of the loop's backward:
1. first pass at w (the loop's own forward), backward of the inner loss: the weighted mean of
   the per-example losses under rwSAM, the plain loss otherwise;
2. e = rho g / ||g|| (adaptive: rho T^2 g / ||T g||, T = |w|), w <- w + e;
3. second pass at w + e on the very same views (the augmentation generator and the RNGs are
   rewound) and buffers (BN statistics, MoCo's queue rewound, so the pass has no side effect),
   backward of the UNWEIGHTED loss: that gradient is the one the optimizer applies;
4. w <- w (the saved copy, exact), and the loop clips and steps as usual.

AMP: the first gradient is unscaled here by the GradScaler's scale to compute e (the scaler's
own `unscale_` is left for the second gradient, which the loop steps with); a non-finite first
gradient skips the step: its inf gradients are left in place, so `scaler.step` skips and
`scaler.update` lowers the scale.

DDP: both passes run through the DDP module without `no_sync`, so the first gradient is
all-reduced before e is computed: every process perturbs by the same global gradient and the
replicas stay identical (under `no_sync` each would move by its own local gradient, to a
different point, and the averaged second gradient would belong to none of them). That costs a
second all-reduce per step. Weights are normalised over the global batch (methods/reweight.py).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import write_text
from ..config import SAMConfig
from .device import autocast
from .distributed import gather
from .step import Method, StepContext, StepOutput

WEIGHTS_FILE = "sam_weights.json"  # per epoch, per class: the inner-loss weights' distribution


class ExampleWeights:
    """A source of per-example weights for the inner maximisation (see methods/reweight.py):
    called with the first pass's output and the labels, returns (B,) weights, mean 1."""

    def __call__(self, out: StepOutput, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def new_epoch(self) -> None:
        """Called as each epoch ends: a source with a memory empties it here."""


@torch.no_grad()
def perturbation(
    params: list[torch.Tensor], rho: float, adaptive: bool, grad_scale: float = 1.0
) -> list[torch.Tensor] | None:
    """SAM's ascent step from the parameters' (scaled) gradients; None if one is not finite."""
    grads = [
        p.grad.float() / grad_scale
        if p.grad is not None
        else torch.zeros_like(p, dtype=torch.float)
        for p in params
    ]
    scaled = [g * p.abs() if adaptive else g for g, p in zip(grads, params, strict=True)]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(s) for s in scaled]))
    if not torch.isfinite(norm):
        return None
    factor = rho / (norm + 1e-12)
    return [(s * p.abs() if adaptive else s) * factor for s, p in zip(scaled, params, strict=True)]


class _Rewind:
    """The random generators and buffers a forward pass moves, captured to replay it."""

    def __init__(self, model: nn.Module, generator: torch.Generator, device: torch.device) -> None:
        self.generator, self.device = generator, device
        self.gen_state = generator.get_state()
        self.cpu_state = torch.get_rng_state()
        self.cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        self.buffers = [b.detach().clone() for b in model.buffers()]

    def restore(self, model: nn.Module) -> list[torch.Tensor]:
        """Rewind; the buffers as they were just before (to put back after the replay)."""
        self.generator.set_state(self.gen_state)
        torch.set_rng_state(self.cpu_state)
        if self.cuda_state is not None:
            torch.cuda.set_rng_state(self.cuda_state, self.device)
        moved = [b.detach().clone() for b in model.buffers()]
        _copy_buffers(model, self.buffers)
        return moved


@torch.no_grad()
def _copy_buffers(model: nn.Module, values: list[torch.Tensor]) -> None:
    for b, v in zip(model.buffers(), values, strict=True):
        b.copy_(v)


class SAM:
    """The hook: `begin(ctx)` before the loop's forward, `backward(...)` instead of its backward,
    `end_epoch(epoch)` after each epoch (writes the weights' per-class distribution)."""

    def __init__(
        self,
        cfg: SAMConfig,
        model: Method,
        optimizer: torch.optim.Optimizer,
        weights: ExampleWeights | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.cfg, self.model, self.weights = cfg, model, weights
        self.params = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
        self.log_file = log_dir / WEIGHTS_FILE if log_dir is not None else None
        self._rewind: _Rewind | None = None
        self._seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # (weights, labels) per step

    def begin(self, ctx: StepContext, device: torch.device) -> None:
        self._rewind = _Rewind(self.model, ctx.generator, device)

    def inner_loss(self, out: StepOutput, labels: torch.Tensor) -> torch.Tensor:
        """The loss the perturbation ascends: per-example losses weighted (rwSAM) or the loss."""
        if self.weights is None:
            return out.loss
        if out.losses is None:
            raise ValueError(f"{self.model.name}: no per-example losses, so no rwSAM weights")
        w = self.weights(out, labels)
        self._record(w, labels)
        out.logs["sam_weight_max"] = w.max()
        return (w * out.losses.float()).mean()

    def backward(
        self,
        step_model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        ctx: StepContext,
        out: StepOutput,
        scaler: Any,
    ) -> torch.Tensor | None:
        """Leave in .grad the (scaled) gradient of the unweighted loss at w + e; return that
        loss (None when the step is skipped), for the loop to check it is finite."""
        assert self._rewind is not None, "SAM.begin must run before the first pass"
        scaler.scale(self.inner_loss(out, labels)).backward()
        e = perturbation(self.params, self.cfg.rho, self.cfg.adaptive, _scale(scaler))
        if e is None:  # inf/NaN first gradient (AMP overflow): scaler.step skips this step
            return None
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, ei in zip(self.params, e, strict=True):
                p.add_(ei.to(p.dtype))
        for p in self.params:
            p.grad = None
        after_first = self._rewind.restore(self.model)
        with autocast(images.device):
            perturbed = step_model(images, labels, ctx)
        scaler.scale(perturbed.loss).backward()
        with torch.no_grad():
            for p, w in zip(self.params, saved, strict=True):
                p.copy_(w)
        _copy_buffers(self.model, after_first)
        out.logs["sam_loss_perturbed"] = perturbed.loss.detach()
        self._rewind = None
        return perturbed.loss.detach()

    def _record(self, w: torch.Tensor, labels: torch.Tensor) -> None:
        """Kept on the device until the epoch ends (no sync per step)."""
        self._seen.append((gather(w.detach().float()), gather(labels.long())))

    def end_epoch(self, epoch: int, write: bool = True) -> dict[str, Any]:
        """This epoch's weights per class (mean, median, count), appended to sam_weights.json."""
        per_class: dict[str, dict[str, float]] = {}
        if self._seen:
            w = torch.cat([s[0] for s in self._seen]).cpu().numpy()
            y = torch.cat([s[1] for s in self._seen]).cpu().numpy()
            for c in np.unique(y):
                wc = w[y == c]
                per_class[str(int(c))] = {
                    "mean": float(wc.mean()),
                    "median": float(np.median(wc)),
                    "n": int(len(wc)),
                }
        self._seen.clear()
        if self.weights is not None:
            self.weights.new_epoch()
        row = {"epoch": epoch, "per_class": per_class}
        if write and self.log_file is not None and per_class:
            history = [r for r in _read_log(self.log_file) if r.get("epoch", math.inf) < epoch]
            write_text(self.log_file, json.dumps([*history, row], indent=1) + "\n")
        return row


def _scale(scaler: Any) -> float:
    return float(scaler.get_scale()) if scaler.is_enabled() else 1.0


def _read_log(path: Path) -> list[dict[str, Any]]:
    try:
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return rows if isinstance(rows, list) else []

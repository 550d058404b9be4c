"""Linear probe on cached features: multinomial logistic regression by full-batch L-BFGS.

The L2 strength is chosen on the validation split; the grid is walked from strong to weak
regularisation, each fit warm-started from the last, which is what makes it fast.
Objective: mean cross-entropy + l2/2 * ||W||^2 (bias not penalised). scikit-learn's C maps to
l2 = 1 / (C * n_train).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import LinearProbeConfig
from ..errors import UserError
from .metrics import per_class_accuracy
from .registry import (
    EvaluationContext,
    EvaluationKind,
    EvaluationSpec,
    Outcome,
    StudyInputs,
    register_evaluation,
)

if TYPE_CHECKING:
    from ..data.study_data import StudyData


@dataclass
class LinearModel:
    weight: torch.Tensor  # (C, D), on standardised features
    bias: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    l2: float

    def scores(self, x: np.ndarray | torch.Tensor) -> np.ndarray:
        x = torch.as_tensor(x, dtype=self.weight.dtype, device=self.weight.device)
        z = (x - self.mean) / self.std
        return (z @ self.weight.t() + self.bias).float().cpu().numpy()


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    num_classes: int,
    l2: float,
    *,
    max_iter: int = 300,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    tol: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise mean CE + l2/2 ||W||^2 on (already standardised) x; returns (W, b)."""
    d = x.shape[1]
    if init is None:
        w = torch.zeros(num_classes, d, dtype=x.dtype, device=x.device)
        b = torch.zeros(num_classes, dtype=x.dtype, device=x.device)
    else:
        w, b = init[0].clone(), init[1].clone()
    w.requires_grad_(True)
    b.requires_grad_(True)
    # stop like scikit-learn's lbfgs: max |gradient| <= tol on the same (mean-scaled) objective
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=tol,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(x @ w.t() + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    num_classes: int,
    l2_grid: list[float],
    *,
    max_iter: int = 300,
    device: torch.device | str = "cpu",
) -> tuple[LinearModel, list[dict]]:
    """Fit one model per L2 strength, keep the one with the best validation balanced accuracy
    (ties: stronger regularisation). Returns the model and the validation curve. Without a
    validation split there is no choice: a one-value grid is used as given (its curve says
    None), a longer one is refused."""
    dev = torch.device(device)
    x = torch.as_tensor(np.asarray(train_x), dtype=torch.float32, device=dev)
    y = torch.as_tensor(np.asarray(train_y), dtype=torch.long, device=dev)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    xs = (x - mean) / std
    best: LinearModel | None = None
    best_score = -1.0
    curve = []
    init = None
    for l2 in sorted(l2_grid, reverse=True):
        w, b = fit_logistic(xs, y, num_classes, l2, max_iter=max_iter, init=init)
        init = (w, b)
        model = LinearModel(w, b, mean, std, l2)
        if not len(val_y):  # nothing to select on: the one L2 given (check_evaluation_sizes)
            if len(l2_grid) > 1:
                raise ValueError(f"no validation split to choose among the L2 grid {l2_grid}")
            curve.append({"l2": l2, "val_balanced_accuracy": None})
            return model, curve
        preds = model.scores(val_x).argmax(1)
        score = float(np.nanmean(per_class_accuracy(np.asarray(val_y), preds, num_classes)))
        curve.append({"l2": l2, "val_balanced_accuracy": score})
        if score > best_score:
            best, best_score = model, score
    assert best is not None
    return best, curve


@register_evaluation(LinearProbeConfig)
class LinearProbe(EvaluationKind[LinearProbeConfig]):
    """Liu et al.'s linear probe: logistic regression on frozen features, L2 chosen on val."""

    reads = ("adapt", "val", "test")

    def specs(self, settings: LinearProbeConfig, study: StudyInputs) -> list[EvaluationSpec]:
        key = {"l2_grid": settings.l2_grid, "max_iter": settings.max_iter}
        return [
            EvaluationSpec(f"linear-{on}", on, settings, key, "linear")
            for on in dict.fromkeys(settings.train_on)
        ]

    def check(self, settings: LinearProbeConfig, data: StudyData) -> None:
        if not len(data.indices("val")) and len(settings.l2_grid) > 1:
            raise UserError(
                "data.split.val_per_class: this data has no validation split, so the linear "
                f"probe cannot choose among evaluation.linear.l2_grid {settings.l2_grid}; give "
                "one L2 value (it is then used as given) or val_per_class >= 1"
            )

    def without_val(self, settings: LinearProbeConfig) -> str:
        return (
            f"no validation split: the linear probe uses L2 {settings.l2_grid[0]:g} as given, "
            "selected on nothing"
        )

    def run(self, job: Any, ctx: EvaluationContext) -> Outcome:
        s: LinearProbeConfig = job.spec.settings
        data, val = ctx.data, ctx.data.indices("val")
        model, curve = linear_probe(
            ctx.adapt_features(job.indices),
            data.labels[job.indices],
            ctx.split_features("val"),
            data.labels[val],
            data.num_classes,
            s.l2_grid,
            max_iter=s.max_iter,
            device=ctx.device,
        )
        scores = model.scores(ctx.split_features("test"))
        return Outcome(scores, {"l2": model.l2, "val_curve": curve})

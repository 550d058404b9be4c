"""Weighted kNN on frozen features (Wu et al. 2018): cosine similarity, exp(s / T) votes."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import KNNConfig
from ..errors import UserError
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


@torch.no_grad()
def knn_scores(
    train: np.ndarray,
    train_labels: np.ndarray,
    test: np.ndarray,
    k: int,
    temperature: float,
    num_classes: int,
    chunk: int = 1024,
) -> np.ndarray:
    """Class scores (N_test, C): the sum of exp(cos / T) over each test point's k neighbours,
    each row scaled by exp(-max cos / T) so that no weight overflows: a small T (1e-12) gave
    inf votes in several classes and an arbitrary argmax; scaled, the nearest neighbour's
    weight is 1 and a tiny T tends to 1-NN, as it should. A k above the training set is
    refused (check_evaluation_sizes says so before a study starts), never silently capped."""
    if k > len(train):
        raise ValueError(f"k = {k} exceeds the {len(train)} labelled images")
    tr = F.normalize(torch.from_numpy(np.asarray(train, np.float32)), dim=1)
    te = F.normalize(torch.from_numpy(np.asarray(test, np.float32)), dim=1)
    labels = torch.from_numpy(np.asarray(train_labels, np.int64))
    out = []
    for start in range(0, len(te), chunk):
        sims, idx = (te[start : start + chunk] @ tr.t()).topk(k, dim=1)
        # topk sorts: column 0 is each row's largest similarity
        weights = ((sims - sims[:, :1]) / temperature).exp()
        scores = torch.zeros(len(sims), num_classes)
        scores.scatter_add_(1, labels[idx], weights)
        out.append(scores)
    return torch.cat(out).numpy() if out else np.zeros((0, num_classes), np.float32)


@register_evaluation(KNNConfig)
class KNN(EvaluationKind[KNNConfig]):
    """The weighted kNN classifier on frozen features of the probe set, one result per k."""

    reads = ("adapt", "test")

    def specs(self, settings: KNNConfig, study: StudyInputs) -> list[EvaluationSpec]:
        return [
            EvaluationSpec(
                f"knn-k{k}",
                "balanced",
                settings,
                {"k": k, "temperature": settings.temperature},
                variant=k,
            )
            for k in dict.fromkeys(settings.k)
        ]

    def check(self, settings: KNNConfig, data: StudyData) -> None:
        probe = len(data.probe_balanced)
        over = [k for k in settings.k if k > probe]
        if over:
            raise UserError(
                f"evaluation.knn.k: {over} exceed(s) the probe set's {probe} images: every image "
                f"would vote and the rows would still be labelled k={over[0]}; use k <= {probe}"
            )
        per_class = int(data.class_counts(data.probe_balanced).max())
        wide = [k for k in settings.k if k > per_class]
        if wide:
            print(
                f"warning: evaluation.knn.k {wide} > the probe set's {per_class} images per "
                f"class: even a perfect representation's {wide[0]} nearest neighbours span "
                "several classes, so these kNN rows measure smoothing over classes as much as "
                "the representation (the rows are kept; read them with that in mind)",
                file=sys.stderr,
            )

    def run(self, job: Any, ctx: EvaluationContext) -> Outcome:
        s: KNNConfig = job.spec.settings
        k = job.spec.variant
        assert k is not None
        scores = knn_scores(
            ctx.adapt_features(job.indices),
            ctx.data.labels[job.indices],
            ctx.split_features("test"),
            k,
            s.temperature,
            ctx.data.num_classes,
        )
        return Outcome(scores)

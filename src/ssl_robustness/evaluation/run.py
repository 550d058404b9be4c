"""Run every configured evaluation of one representation, skipping those already done."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import read_json
from ..config import AugmentationConfig, EvaluationConfig, SupervisedConfig, config_hash
from ..data.prepare import StudyData
from .features import cached_features
from .finetune import train_classifier
from .knn import knn_scores
from .linear_probe import linear_probe
from .outputs import METRICS_FILE, write_evaluation


@dataclass(frozen=True)
class EvaluationSpec:
    name: str  # linear-balanced, linear-imbalanced, knn-k20, finetune, linear-sgd
    kind: str
    settings: dict[str, Any]

    def directory(self, rep_dir: Path) -> Path:
        return rep_dir / "eval" / f"{self.name}-{config_hash(self.settings, 8)}"


def evaluation_specs(
    cfg: EvaluationConfig, augmentation: AugmentationConfig | None = None
) -> list[EvaluationSpec]:
    aug = augmentation.model_dump() if augmentation is not None else None
    specs = []
    if cfg.linear.enabled:
        for on in dict.fromkeys(cfg.linear.train_on):
            specs.append(
                EvaluationSpec(
                    f"linear-{on}",
                    "linear",
                    {
                        "train_on": on,
                        "l2_grid": cfg.linear.l2_grid,
                        "max_iter": cfg.linear.max_iter,
                        "probe_per_class": cfg.probe_per_class,
                    },
                )
            )
    if cfg.knn.enabled:
        for k in dict.fromkeys(cfg.knn.k):
            specs.append(
                EvaluationSpec(
                    f"knn-k{k}",
                    "knn",
                    {
                        "k": k,
                        "temperature": cfg.knn.temperature,
                        "probe_per_class": cfg.probe_per_class,
                    },
                )
            )
    if cfg.finetune.enabled:
        specs.append(
            EvaluationSpec(
                "finetune", "finetune", {**cfg.finetune.model_dump(), "augmentation": aug}
            )
        )
    if cfg.linear_sgd.enabled:
        specs.append(
            EvaluationSpec(
                "linear-sgd", "linear_sgd", {**cfg.linear_sgd.model_dump(), "augmentation": aug}
            )
        )
    return specs


def evaluate_representation(
    backbone: nn.Module,
    data: StudyData,
    cfg: EvaluationConfig,
    rep_dir: Path,
    seed: int,
    device: torch.device,
    augmentation: AugmentationConfig | None = None,
) -> Iterator[tuple[EvaluationSpec, dict[str, Any]]]:
    """Yield (spec, result) for every evaluation; finished ones are read back, not rerun."""
    feats_dir = rep_dir / "features"
    sets = {
        "probe-balanced": data.probe_balanced,
        "imbalanced": data.subsets[data.imbalanced_name],
        "val": data.indices("val"),
        "test": data.indices("test"),
    }

    def features(name: str) -> np.ndarray:
        return cached_features(feats_dir, name, backbone, data.images, sets[name], device)

    test_idx = sets["test"]
    from ..methods import method_views

    view = method_views(SupervisedConfig(), augmentation)[0]
    for spec in evaluation_specs(cfg, augmentation):
        out = spec.directory(rep_dir)
        if (out / METRICS_FILE).exists():
            yield spec, read_json(out / METRICS_FILE)
            continue
        s = spec.settings
        extra: dict[str, Any] = {"evaluation": spec.name, "settings": s}
        if spec.kind == "linear":
            train = "probe-balanced" if s["train_on"] == "balanced" else "imbalanced"
            model, curve = linear_probe(
                features(train),
                data.labels[sets[train]],
                features("val"),
                data.labels[sets["val"]],
                data.num_classes,
                s["l2_grid"],
                max_iter=s["max_iter"],
                device=device,
            )
            scores = model.scores(features("test"))
            extra.update(l2=model.l2, val_curve=curve, train_size=len(sets[train]))
        elif spec.kind == "knn":
            scores = knn_scores(
                features("probe-balanced"),
                data.labels[sets["probe-balanced"]],
                features("test"),
                s["k"],
                s["temperature"],
                data.num_classes,
            )
            extra.update(train_size=len(sets["probe-balanced"]))
        else:
            frozen = spec.kind == "linear_sgd"
            train_idx = sets["probe-balanced"] if frozen else sets["imbalanced"]
            scores = train_classifier(
                backbone,
                data,
                train_idx,
                out,
                epochs=s["epochs"],
                batch_size=s["batch_size"],
                lr=s["lr"],
                weight_decay=s.get("weight_decay", 0.0),
                backbone_lr_mult=s.get("backbone_lr_mult", 0.0),
                loss=s.get("loss", "ce"),
                sampler=s.get("sampler", "instance"),
                freeze_backbone=frozen,
                seed=seed,
                device=device,
                view=view,
            )
            extra.update(
                train_size=len(train_idx),
                selected=read_json(out / "best.json") if (out / "best.json").exists() else None,
            )
        yield spec, write_evaluation(out, data, test_idx, scores, extra)

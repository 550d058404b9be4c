"""Run every configured evaluation of one representation, skipping those already done.

Every evaluation says what it adapts on, and so which comparison its balanced-vs-imbalanced
gap belongs to (DESIGN.md section 2):

| adapts on | trained representation (arm = its subset) | fixed (imported, random init) |
|---|---|---|
| `balanced`: the probe set, disjoint from every subset | pretraining robustness | the floor |
| `own`: the arm's own subset | end-to-end robustness | one run per subset: fixed representation |
| `imbalanced`: the main imbalanced subset, for all | cross-scenario (no gap) | cross-scenario |
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import read_json_or_none, write_json
from ..cache_keys import evaluation_key
from ..cache_keys import evaluation_seed as _seed
from ..config import AugmentationConfig, EvaluationConfig
from ..data.study_data import StudyData
from ..errors import UserError
from ..layout import RepresentationLayout
from ..methods.augment import adjust_view
from ..methods.supervised import SUPERVISED_VIEW
from ..models.vit import ViTBackbone
from .features import cached_features
from .finetune import BEST_META, train_classifier
from .knn import knn_scores
from .linear_probe import linear_probe
from .outputs import METRICS_FILE, predictions_readable, write_evaluation

PROBE_SET = "probe-balanced"


@dataclass(frozen=True)
class EvaluationSpec:
    """One configured evaluation: `kind` (linear, knn, finetune, linear_sgd) adapted on
    `adapt` (balanced, own, imbalanced)."""

    name: str  # linear-balanced, linear-own, knn-k20, finetune-own, finetune-imbalanced, ...
    kind: str
    adapt: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class EvaluationJob:
    """An evaluation of one representation on one adaptation set."""

    spec: EvaluationSpec
    arm: str | None  # the subset this row stands for in a gap; None: no arm
    adapt_on: str  # 'probe-balanced' or a subset name
    comparison: str  # pretraining | end-to-end | fixed-representation | cross-scenario
    indices: np.ndarray

    @property
    def label(self) -> str:
        fixed_own = self.spec.adapt == "own" and self.comparison == "fixed-representation"
        return f"{self.spec.name}-{self.arm}" if fixed_own else self.spec.name

    def directory(self, rep_dir: Path, data: StudyData) -> Path:
        """Keyed by the settings and by the very images adapted on and tested on, so a changed
        probe set or draw can never be read back as this evaluation, and two jobs that adapt
        on the same images (the imbalanced arm's `own` and `imbalanced`) share one run."""
        own_name = self.spec.kind in ("knn", "linear_sgd")
        base = self.spec.name if own_name else self.spec.name.rsplit("-", 1)[0]
        key = evaluation_key(
            self.spec.settings, data.items_key(self.indices), data.items_key(data.indices("test"))
        )
        return RepresentationLayout(rep_dir).evaluation(f"{base}-on-{self.adapt_on}-{key}")


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
                    on,
                    {"l2_grid": cfg.linear.l2_grid, "max_iter": cfg.linear.max_iter},
                )
            )
    if cfg.knn.enabled:
        for k in dict.fromkeys(cfg.knn.k):
            specs.append(
                EvaluationSpec(
                    f"knn-k{k}", "knn", "balanced", {"k": k, "temperature": cfg.knn.temperature}
                )
            )
    if cfg.finetune.enabled:
        # `vit` joins the settings of vision transformers only (vit_specs): ResNets keep their keys
        ft = cfg.finetune.model_dump(exclude={"train_on", "enabled", "vit"})
        settings = {**ft, "augmentation": aug}
        for on in dict.fromkeys(cfg.finetune.train_on):
            specs.append(EvaluationSpec(f"finetune-{on}", "finetune", on, settings))
    if cfg.linear_sgd.enabled:
        specs.append(
            EvaluationSpec(
                "linear-sgd",
                "linear_sgd",
                "balanced",
                {**cfg.linear_sgd.model_dump(exclude={"enabled"}), "augmentation": aug},
            )
        )
    return specs


def vit_specs(specs: list[EvaluationSpec], cfg: EvaluationConfig) -> list[EvaluationSpec]:
    """A vision transformer's fine-tuning: its AdamW and layer-decay settings (used in place of
    lr, backbone_lr_mult and weight_decay) join its settings, and so its evaluation's key."""
    vit = cfg.finetune.vit.model_dump()
    return [
        replace(s, settings={**s.settings, "vit": vit}) if s.kind == "finetune" else s
        for s in specs
    ]


def check_evaluation_sizes(cfg: EvaluationConfig, data: StudyData) -> None:
    """Refuse, before any training, settings this data would silently turn into others: a kNN
    k above the probe set's size (every image votes, the rows still say k), and the linear
    probe's L2 grid without a validation split to choose on."""
    probe = len(data.probe_balanced)
    if cfg.knn.enabled:
        over = [k for k in cfg.knn.k if k > probe]
        if over:
            raise UserError(
                f"evaluation.knn.k: {over} exceed(s) the probe set's {probe} images: every image "
                f"would vote and the rows would still be labelled k={over[0]}; use k <= {probe}"
            )
    if cfg.linear.enabled and not len(data.indices("val")) and len(cfg.linear.l2_grid) > 1:
        raise UserError(
            f"data.split.val_per_class: this data has no validation split, so the linear probe "
            f"cannot choose among evaluation.linear.l2_grid {cfg.linear.l2_grid}; give one "
            "L2 value (it is then used as given) or val_per_class >= 1"
        )


def evaluation_jobs(
    specs: list[EvaluationSpec], data: StudyData, seed: int, subset: str | None
) -> list[EvaluationJob]:
    """What each evaluation adapts on for a representation trained on `subset` (None: a fixed
    representation, adapted on each subset in turn where the evaluation adapts on `own`)."""
    drawn = data.draw(seed)
    jobs = []
    for spec in specs:
        if spec.adapt == "balanced":
            comparison = "pretraining"
            jobs.append(EvaluationJob(spec, subset, PROBE_SET, comparison, data.probe_balanced))
        elif spec.adapt == "imbalanced":
            main = drawn.imbalanced_name
            jobs.append(EvaluationJob(spec, subset, main, "cross-scenario", drawn.subsets[main]))
        elif subset is not None:
            jobs.append(EvaluationJob(spec, subset, subset, "end-to-end", drawn.subsets[subset]))
        else:
            for plan in drawn.matched_plans:
                jobs.append(
                    EvaluationJob(
                        spec,
                        plan.name,
                        plan.name,
                        "fixed-representation",
                        drawn.subsets[plan.name],
                    )
                )
    return jobs


def evaluation_seed(rep_dir: Path, job_dir: Path, seed: int) -> int:
    """Every evaluation seeds itself from its own identity, never from global state, so a
    resumed or rebuilt evaluation gives the numbers of an uninterrupted run."""
    return _seed(rep_dir.name, job_dir.name, seed)


def evaluate_representation(
    backbone: nn.Module,
    data: StudyData,
    cfg: EvaluationConfig,
    rep_dir: Path,
    seed: int,
    device: torch.device,
    augmentation: AugmentationConfig | None = None,
    *,
    subset: str | None = None,
    image_size: int | None = None,
) -> Iterator[tuple[EvaluationJob, Path, dict[str, Any]]]:
    """Yield (job, directory, metrics.json) for every evaluation; finished ones are read back,
    not rerun. `image_size` is the representation's own input size (imported backbones)."""
    images = data.images_at(image_size) if image_size else data.images
    feats_dir = RepresentationLayout(rep_dir).features
    test_idx = data.indices("test")
    clock = PhaseClock()  # extraction time is kept apart from each evaluation's own
    held: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # read and checksummed once per call

    def features(name: str, idx: np.ndarray) -> np.ndarray:
        if name in held and np.array_equal(held[name][0], idx):
            return held[name][1]
        fresh = not (feats_dir / f"{name}.meta.json").exists()
        started = time.perf_counter()
        feats = cached_features(
            feats_dir, name, backbone, images, idx, device, items=data.items_key(idx)
        )
        if fresh:
            clock.features += time.perf_counter() - started
        held[name] = (idx, feats)
        return feats

    view = SUPERVISED_VIEW
    if augmentation is not None:
        view = adjust_view(view, augmentation.crop_min_scale, augmentation.flip, augmentation.color)
    specs = evaluation_specs(cfg, augmentation)
    if isinstance(backbone, ViTBackbone):
        specs = vit_specs(specs, cfg)
    for job in evaluation_jobs(specs, data, seed, subset):
        out = job.directory(rep_dir, data)
        done = read_json_or_none(out / METRICS_FILE)
        if done is not None and predictions_readable(
            out, len(test_idx), data.num_classes, data.labels[test_idx]
        ):
            yield job, out, done
            continue
        spec = job.spec
        s = spec.settings
        started, features_before = time.perf_counter(), clock.features
        extra: dict[str, Any] = {
            "kind": spec.kind,
            "adapt_on": job.adapt_on,
            "train_size": len(job.indices),
            "settings": s,
        }
        train_name = PROBE_SET if job.adapt_on == PROBE_SET else f"subset-{job.adapt_on}"
        if spec.kind == "linear":
            model, curve = linear_probe(
                features(train_name, job.indices),
                data.labels[job.indices],
                features("val", data.indices("val")),
                data.labels[data.indices("val")],
                data.num_classes,
                s["l2_grid"],
                max_iter=s["max_iter"],
                device=device,
            )
            scores = model.scores(features("test", test_idx))
            extra.update(l2=model.l2, val_curve=curve)
        elif spec.kind == "knn":
            scores = knn_scores(
                features(train_name, job.indices),
                data.labels[job.indices],
                features("test", test_idx),
                s["k"],
                s["temperature"],
                data.num_classes,
            )
        else:
            scores = train_classifier(
                backbone,
                data,
                job.indices,
                out,
                epochs=s["epochs"],
                batch_size=s["batch_size"],
                lr=s["lr"],
                weight_decay=s.get("weight_decay", 0.0),
                backbone_lr_mult=s.get("backbone_lr_mult", 0.0),
                loss=s.get("loss", "ce"),
                sampler=s.get("sampler", "instance"),
                freeze_backbone=spec.kind == "linear_sgd",
                seed=evaluation_seed(rep_dir, out, seed),
                device=device,
                view=view,
                images=images,
                vit=s.get("vit"),
            )
            extra.update(selected=read_json_or_none(out / BEST_META), epochs=s["epochs"])
        took = time.perf_counter() - started - (clock.features - features_before)
        extra["seconds"] = round(took, 3)
        clock.evaluations[job.label] = took
        result = write_evaluation(out, data, test_idx, scores, extra)
        clock.write(rep_dir)
        yield job, out, result


@dataclass
class PhaseClock:
    """Seconds this run spent extracting features and in each evaluation it ran."""

    features: float = 0.0
    evaluations: dict[str, float] = field(default_factory=dict)
    _written: float = 0.0  # the features time already added to representation.json

    def write(self, rep_dir: Path) -> None:
        """Add the times to `representation.json`'s phases, where the cost table reads them.
        Features add up over resumed runs; an evaluation read back from its cache keeps the
        time it took when it ran."""
        done = RepresentationLayout(rep_dir).done
        info = read_json_or_none(done)
        if not isinstance(info, dict):
            return
        phases = dict(info.get("phases") or {})
        added = self.features - self._written
        phases["features"] = round(phases.get("features", 0.0) + added, 3)
        self._written = self.features
        phases.update({f"evaluation {k}": round(v, 3) for k, v in self.evaluations.items()})
        info["phases"] = phases
        write_json(done, info)

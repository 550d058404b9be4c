"""Run every configured evaluation of one representation, skipping those already done.

Every evaluation says what it adapts on, and so which comparison its balanced-vs-imbalanced
gap belongs to (docs/design.md, section 1, The protocol):

| adapts on | trained representation (arm = its subset) | fixed (imported, random init) |
|---|---|---|
| `balanced`: the probe set, disjoint from every subset | pretraining robustness | the floor |
| `own`: the arm's own subset | end-to-end robustness | one run per subset: fixed representation |
| `imbalanced`: the main imbalanced subset, for all | cross-scenario (no gap) | cross-scenario |
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import read_json_or_none, write_json
from ..cache_keys import evaluation_key, evaluation_seed
from ..config import AugmentationConfig, EvaluationConfig
from ..data.study_data import StudyData
from ..layout import RepresentationLayout
from ..methods.augment import LABELLED_VIEW, adjust_view
from ..models.vit import ViTBackbone
from .features import cached_features
from .kinds import enabled_kinds, evaluation_specs
from .outputs import METRICS_FILE, predictions_readable, write_evaluation
from .registry import EvaluationContext, EvaluationSpec, kind_of_spec

PROBE_SET = "probe-balanced"


@dataclass(frozen=True)
class EvaluationJob:
    """An evaluation of one representation on one adaptation set."""

    spec: EvaluationSpec
    arm: str | None  # the subset this row stands for in a gap; None: no arm
    adapt_on: str  # 'probe-balanced' or a subset name
    comparison: str  # pretraining | end-to-end | fixed-representation | cross-scenario
    indices: np.ndarray

    @property
    def features_name(self) -> str:
        """The name its adaptation set's frozen features are cached under."""
        return PROBE_SET if self.adapt_on == PROBE_SET else f"subset-{self.adapt_on}"

    @property
    def label(self) -> str:
        fixed_own = self.spec.adapt == "own" and self.comparison == "fixed-representation"
        return f"{self.spec.name}-{self.arm}" if fixed_own else self.spec.name

    def directory(self, rep_dir: Path, data: StudyData) -> Path:
        """Keyed by the settings and by the very images adapted on and tested on, so a changed
        probe set or draw can never be read back as this evaluation, and two jobs that adapt
        on the same images (the imbalanced arm's `own` and `imbalanced`) share one run."""
        key = evaluation_key(
            self.spec.key, data.items_key(self.indices), data.items_key(data.indices("test"))
        )
        return RepresentationLayout(rep_dir).evaluation(
            f"{self.spec.base}-on-{self.adapt_on}-{key}"
        )


def check_evaluation_sizes(cfg: EvaluationConfig, data: StudyData) -> None:
    """Refuse, before any training, settings this data would silently turn into others (each
    kind's `check`: a kNN k above the probe set, an L2 grid without val to choose on)."""
    for settings, kind in enabled_kinds(cfg):
        kind.check(settings, data)


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
    assert data.store is not None, "evaluations need the decoded images (prepare_data)"
    images = data.store.at(image_size)
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

    view = LABELLED_VIEW
    if augmentation is not None:
        view = adjust_view(view, augmentation.crop_min_scale, augmentation.flip, augmentation.color)
    specs = evaluation_specs(cfg, augmentation, vit=isinstance(backbone, ViTBackbone))
    for job in evaluation_jobs(specs, data, seed, subset):
        out = job.directory(rep_dir, data)
        done = read_json_or_none(out / METRICS_FILE)
        if done is not None and predictions_readable(
            out, len(test_idx), data.num_classes, data.labels[test_idx]
        ):
            yield job, out, done
            continue
        spec = job.spec
        started, features_before = time.perf_counter(), clock.features
        context = EvaluationContext(
            backbone=backbone,
            data=data,
            images=images,
            device=device,
            directory=out,
            seed=evaluation_seed(rep_dir.name, out.name, seed),
            view=view,
            features=features,
            adapt_features_name=job.features_name,
        )
        outcome = kind_of_spec(spec).run(job, context)
        took = time.perf_counter() - started - (clock.features - features_before)
        extra: dict[str, Any] = {
            "kind": spec.kind,
            "adapt_on": job.adapt_on,
            "train_size": len(job.indices),
            "settings": spec.key,
            **outcome.record,
            "seconds": round(took, 3),
        }
        clock.evaluations[job.label] = took
        result = write_evaluation(out, data, test_idx, outcome.scores, extra)
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

"""The literature's augmented-SGD linear probe: a linear head trained by SGD on augmented images
through the frozen backbone (the fine-tuning loop with the backbone frozen)."""

from __future__ import annotations

from typing import Any

from ..config import LinearSGDConfig
from .finetune import ClassifierFit
from .registry import (
    EvaluationContext,
    EvaluationSpec,
    Outcome,
    StudyInputs,
    register_evaluation,
)


@register_evaluation(LinearSGDConfig)
class LinearSGD(ClassifierFit[LinearSGDConfig]):
    def specs(self, settings: LinearSGDConfig, study: StudyInputs) -> list[EvaluationSpec]:
        key = {**settings.model_dump(exclude={"enabled"}), "augmentation": study.augmentation_key}
        return [EvaluationSpec("linear-sgd", "balanced", settings, key)]

    def run(self, job: Any, ctx: EvaluationContext) -> Outcome:
        s: LinearSGDConfig = job.spec.settings
        return self.train(
            job,
            ctx,
            lr=s.lr,
            weight_decay=0.0,
            backbone_lr_mult=0.0,
            loss="ce",
            sampler="instance",
            freeze_backbone=True,
        )

"""The literature's augmented-SGD linear probe: a linear head trained by SGD on augmented images
through the frozen backbone (the fine-tuning loop with the backbone frozen)."""

from __future__ import annotations

from typing import Any

from ..config import LinearSGDConfig
from .finetune import NO_VAL_FIT, fit_record, train_classifier
from .registry import (
    EvaluationContext,
    EvaluationKind,
    EvaluationSpec,
    Fit,
    Outcome,
    StudyInputs,
    register_evaluation,
)


@register_evaluation(LinearSGDConfig)
class LinearSGD(EvaluationKind[LinearSGDConfig]):
    def specs(self, settings: LinearSGDConfig, study: StudyInputs) -> list[EvaluationSpec]:
        key = {**settings.model_dump(exclude={"enabled"}), "augmentation": study.augmentation_key}
        return [EvaluationSpec("linear-sgd", "balanced", settings, key)]

    def fit(self, settings: LinearSGDConfig) -> Fit:
        return Fit(settings.epochs, settings.batch_size)

    def without_val(self, settings: LinearSGDConfig) -> str:
        return NO_VAL_FIT

    def run(self, job: Any, ctx: EvaluationContext) -> Outcome:
        s: LinearSGDConfig = job.spec.settings
        scores = train_classifier(
            ctx.backbone,
            ctx.data,
            job.indices,
            ctx.directory,
            epochs=s.epochs,
            batch_size=s.batch_size,
            lr=s.lr,
            weight_decay=0.0,
            backbone_lr_mult=0.0,
            loss="ce",
            sampler="instance",
            freeze_backbone=True,
            seed=ctx.seed,
            device=ctx.device,
            view=ctx.view,
            images=ctx.images,
        )
        return Outcome(scores, fit_record(ctx.directory, s.epochs))

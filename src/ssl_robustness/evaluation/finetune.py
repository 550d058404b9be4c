"""Fine-tuning (and the augmented-SGD linear probe) through the shared training loop.

Model selection uses the validation split, never the test set: the weights of the epoch with
the best validation balanced accuracy are kept (on disk, so a resumed run keeps them too).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import read_json, read_json_or_none, save_torch, write_json
from ..config import FinetuneConfig, OptimizerConfig, TrainConfig, ViTFinetuneConfig
from ..data.study_data import StudyData
from ..engine.batches import ArrayBatches
from ..engine.loop import fit, seed_everything
from ..methods.augment import LABELLED_VIEW, ViewSpec
from ..methods.longtail_losses import LongTailLoss
from ..methods.supervised import Supervised
from ..models.vit import ViTBackbone
from .features import extract_features
from .metrics import per_class_accuracy
from .registry import (
    EvaluationContext,
    EvaluationKind,
    EvaluationSpec,
    Fit,
    Outcome,
    S,
    StudyInputs,
    register_evaluation,
)

# a fine-tuning run keeps its best-on-val epoch beside its outputs
BEST_WEIGHTS, BEST_META = "best.pt", "best.json"


def predict_scores(
    model: Supervised, images: np.ndarray, indices: np.ndarray, device: torch.device
) -> np.ndarray:
    return extract_features(_LogitsModule(model), images, indices, device)


class _LogitsModule(nn.Module):
    def __init__(self, model: Supervised) -> None:
        super().__init__()
        self.model = model
        self.feature_dim = model.head.weight.shape[0]
        sized = getattr(model.backbone, "feature_batch", None)
        if sized is not None:  # a ViT's batches of the feature pass (extract_features)
            self.feature_batch = sized

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.logits(x)


def train_classifier(
    backbone: nn.Module,
    data: StudyData,
    train_idx: np.ndarray,
    run_dir: Path,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    backbone_lr_mult: float,
    loss: str,
    sampler: str,
    freeze_backbone: bool,
    seed: int,
    device: torch.device,
    view: ViewSpec = LABELLED_VIEW,
    images: np.ndarray,
    vit: ViTFinetuneConfig | None = None,
) -> np.ndarray:
    """Train backbone + linear head on `train_idx`; return test-set scores of the best-on-val
    epoch. `seed` sets everything random here (head, batches, augmentation): the caller
    derives it from the evaluation's identity, so a rebuilt evaluation is the same.

    A vision transformer fine-tuned whole (`vit`: config.ViTFinetuneConfig's settings) trains
    with AdamW and layer-wise learning-rate decay instead of `lr`, `backbone_lr_mult` and
    `weight_decay` (see `vit_training`)."""
    seed_everything(seed)
    counts = data.class_counts(train_idx)
    layerwise = vit is not None and not freeze_backbone and isinstance(backbone, ViTBackbone)
    model = (LayerDecayClassifier if layerwise else Supervised)(
        copy.deepcopy(backbone),
        data.num_classes,
        LongTailLoss(loss, counts),
        view=view,
        backbone_lr_mult=backbone_lr_mult,
        freeze_backbone=freeze_backbone,
    )
    val_idx = data.indices("val")
    best_file, best_meta = run_dir / BEST_WEIGHTS, run_dir / BEST_META

    def select(epoch: int, m: nn.Module) -> dict[str, float]:
        if not len(val_idx):
            save_torch(best_file, m.state_dict())
            return {}
        preds = predict_scores(m, images, val_idx, device).argmax(1)  # type: ignore[arg-type]
        score = float(np.nanmean(per_class_accuracy(data.labels[val_idx], preds, data.num_classes)))
        best = read_json(best_meta)["val_balanced_accuracy"] if best_meta.exists() else -1.0
        if score > best:
            save_torch(best_file, m.state_dict())
            # epoch counts from 0; `epochs` beside it says whether it was the last one
            # (then the run is flagged "possibly undertrained" in the tables)
            write_json(
                best_meta, {"epoch": epoch, "epochs": epochs, "val_balanced_accuracy": score}
            )
        m.train()
        return {"val_balanced_accuracy": score}

    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        checkpoint_every=1,
        optimizer=OptimizerConfig(name="sgd", lr=lr, weight_decay=weight_decay),
    )
    if layerwise:
        assert vit is not None and isinstance(model, LayerDecayClassifier)
        cfg = vit_training(cfg, vit)
        model.layer_decay, model.weight_decay = vit.layer_decay, vit.weight_decay
    batches = ArrayBatches(
        images,
        data.labels,
        train_idx,
        batch_size,
        device,
        sampler=sampler,
        drop_last=len(train_idx) > batch_size,
        num_classes=data.num_classes,
    )
    fit(model, batches, cfg, run_dir, seed=seed, on_epoch_end=select, desc="finetune")
    model.load_state_dict(torch.load(best_file, map_location="cpu", weights_only=True))
    return predict_scores(model, images, data.indices("test"), device)


def vit_training(cfg: TrainConfig, vit: ViTFinetuneConfig) -> TrainConfig:
    """The fine-tuning settings of a ViT: AdamW at lr x batch / 256 (MAE's scaling), its weight
    decay, a linear warm-up, then the cosine decay every run has."""
    lr = vit.lr * cfg.batch_size / 256
    return cfg.model_copy(
        update={
            "optimizer": OptimizerConfig(name="adamw", lr=lr, weight_decay=vit.weight_decay),
            "warmup_epochs": vit.warmup_epochs,
        }
    )


class LayerDecayClassifier(Supervised):
    """A ViT and its head with layer-wise learning-rate decay (ViTBackbone.layer_groups); the
    head learns at the full rate, its bias without weight decay."""

    layer_decay: float = 1.0
    weight_decay: float = 0.0

    def param_groups(self) -> list[dict]:
        assert isinstance(self.backbone, ViTBackbone)
        head = [
            {"params": [p], "weight_decay": self.weight_decay if p.ndim > 1 else 0.0}
            for p in self.head.parameters()
        ]
        return head + self.backbone.layer_groups(self.layer_decay, self.weight_decay)


class ClassifierFit(EvaluationKind[S]):
    """A kind that trains a linear head (and, unfrozen, the backbone) on labels through the one
    training loop: its epochs and batch size priced by `--plan`, its epoch chosen on val."""

    def fit(self, settings: S) -> Fit:
        return Fit(settings.epochs, settings.batch_size)  # type: ignore[attr-defined]

    def without_val(self, settings: S) -> str:
        return "no validation split: fine-tuning keeps its last epoch"

    def train(self, job: Any, ctx: EvaluationContext, **how: Any) -> Outcome:
        """Test-set scores of the best-on-val epoch and the record of that choice; `how`:
        lr, weight_decay, backbone_lr_mult, loss, sampler, freeze_backbone (and vit)."""
        s = job.spec.settings
        scores = train_classifier(
            ctx.backbone,
            ctx.data,
            job.indices,
            ctx.directory,
            epochs=s.epochs,
            batch_size=s.batch_size,
            seed=ctx.seed,
            device=ctx.device,
            view=ctx.view,
            images=ctx.images,
            **how,
        )
        selected = read_json_or_none(ctx.directory / BEST_META)
        return Outcome(scores, {"selected": selected, "epochs": s.epochs})


@register_evaluation(FinetuneConfig)
class Finetune(ClassifierFit[FinetuneConfig]):
    """The whole network and a linear head trained on labels (Liu et al.'s protocol), the epoch
    kept the best on val."""

    def specs(self, settings: FinetuneConfig, study: StudyInputs) -> list[EvaluationSpec]:
        key = {
            **settings.model_dump(exclude={"train_on", "enabled", "vit"}),
            "augmentation": study.augmentation_key,
        }
        if study.vit:  # a ViT's AdamW and layer decay join its key only: ResNets keep theirs
            key["vit"] = settings.vit.model_dump()
        return [
            EvaluationSpec(f"finetune-{on}", on, settings, key, "finetune")
            for on in dict.fromkeys(settings.train_on)
        ]

    def run(self, job: Any, ctx: EvaluationContext) -> Outcome:
        s: FinetuneConfig = job.spec.settings
        return self.train(
            job,
            ctx,
            lr=s.lr,
            weight_decay=s.weight_decay,
            backbone_lr_mult=s.backbone_lr_mult,
            loss=s.loss,
            sampler=s.sampler,
            freeze_backbone=False,
            vit=s.vit,
        )

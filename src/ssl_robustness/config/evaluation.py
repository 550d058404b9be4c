"""The `evaluation` section: the probes, kNN and fine-tuning each representation gets.

Each kind of evaluation has its settings class, an `EvaluationSettings` subclass that names its
`kind`: defining it adds the key `evaluation.<kind>` to the study config (as a method's settings
add a `methods` name), and its code registers under that class in `evaluation/registry.py`. The
classes stay torch-free, so a config validates before torch is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo

from .base import Strict, register_once
from .methods import LossName, SamplerName

_KINDS: dict[str, type[EvaluationSettings]] = {}
_ON_CHANGE: list[Callable[[], None]] = []  # the study config's hook (config/study.py)


def on_evaluation_kinds_changed(hook: Callable[[], None]) -> None:
    """Call `hook` whenever a kind registers or is forgotten (the sections holding this one
    rebuild their validators)."""
    _ON_CHANGE.append(hook)


class EvaluationSettings(Strict):
    """The settings of one kind of evaluation, registered by its `kind` as it is defined."""

    kind: ClassVar[str] = ""  # the key under `evaluation:`; empty: an abstract base
    summary: ClassVar[str] = ""  # the key's one line in `ssl-robustness config`
    order: ClassVar[int] = 100  # where its evaluations run and their rows appear (built-ins 0-3)
    enabled: bool = True
    """Run this evaluation."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if not kind:  # keeps its parent's kind: a variant, not a new kind
            return
        if kind in globals().get("_SHARED_KEYS", ()):
            raise TypeError(f"evaluation kind {kind!r} would hide the key evaluation.{kind}")
        register_once(_KINDS, kind, cls, "evaluation kind")
        _accept_registered_kinds()


def _accept_registered_kinds() -> None:
    """`evaluation.<kind>` for every registered kind (registration order), before the shared
    keys; each defaults to its settings' defaults."""
    model = globals().get("EvaluationConfig")
    if model is None:  # the built-in kinds are defined first: done once it is
        return
    shared = {k: f for k, f in model.model_fields.items() if k in _SHARED_KEYS}
    model.model_fields.clear()
    for kind, settings in _KINDS.items():
        model.model_fields[kind] = FieldInfo.from_annotated_attribute(
            settings, Field(default_factory=settings, description=settings.summary)
        )
    model.model_fields.update(shared)
    model.model_rebuild(force=True)
    for hook in _ON_CHANGE:
        hook()


def evaluation_kind_types() -> dict[str, type[EvaluationSettings]]:
    """The registered kinds' settings by kind, in registration order."""
    return dict(_KINDS)


def unregister_evaluation_kind(kind: str) -> None:
    """Forget a registered kind (tests that register a kind of their own clean up)."""
    _KINDS.pop(kind, None)
    _accept_registered_kinds()


class LinearProbeConfig(EvaluationSettings):
    kind: ClassVar[str] = "linear"
    order: ClassVar[int] = 0
    summary: ClassVar[str] = "The linear probe on frozen features."
    enabled: bool = True
    """Run the linear probe (L2-regularised logistic regression on frozen features)."""
    train_on: list[Literal["balanced", "own", "imbalanced"]] = Field(
        default_factory=lambda: ["balanced", "own"]
    )
    """Training sets of the probe. balanced: the probe set, disjoint from every pretraining subset
    (pretraining robustness); own: the arm's own subset (end-to-end); imbalanced: every
    representation on the main imbalanced subset (a cross-scenario comparison, no gap)."""
    l2_grid: list[float] = Field(default_factory=lambda: [1e-2, 1e-3, 1e-4, 1e-5])
    """L2 penalties tried; the best on val is kept."""
    max_iter: int = Field(300, ge=1)
    """Iterations of the solver at most."""

    @field_validator("l2_grid")
    @classmethod
    def _l2_values(cls, v: list[float]) -> list[float]:
        if not v:
            raise ValueError("must list at least one L2 penalty")
        if min(v) < 0:
            raise ValueError("every L2 penalty must be >= 0")
        return v


class LinearSGDConfig(EvaluationSettings):
    """The literature's augmented-SGD probe (frozen backbone, augmented images); slow, off."""

    kind: ClassVar[str] = "linear_sgd"
    order: ClassVar[int] = 3
    summary: ClassVar[str] = (
        "The literature's augmented-SGD probe (frozen backbone); slow, off by default."
    )

    enabled: bool = False
    """Run the augmented-SGD linear probe."""
    epochs: int = Field(10, ge=1)
    """Training epochs of the SGD probe."""
    lr: float = Field(0.1, gt=0)
    """Learning rate of the SGD probe."""
    batch_size: int = Field(256, ge=2)
    """Batch size of the SGD probe."""


class KNNConfig(EvaluationSettings):
    kind: ClassVar[str] = "knn"
    order: ClassVar[int] = 1
    summary: ClassVar[str] = "The weighted kNN classifier on frozen features."
    enabled: bool = True
    """Run the weighted cosine kNN classifier on frozen features of the probe set."""
    k: list[int] = Field(default_factory=lambda: [20, 200])
    """Neighbour counts, one result each."""
    temperature: float = Field(0.07, gt=0)
    """Temperature of the neighbours' similarity weights."""

    @field_validator("k")
    @classmethod
    def _positive_distinct(cls, v: list[int]) -> list[int]:
        if any(k < 1 for k in v):
            raise ValueError("every k must be >= 1")
        if len(set(v)) != len(v):
            raise ValueError("k values must be distinct")
        return v


class ViTFinetuneConfig(Strict):
    """How a vision transformer is fine-tuned: as MAE, BEiT and iBOT fine-tune theirs (AdamW,
    layer-wise learning-rate decay, no weight decay on biases, norms, tokens and position
    embeddings). Used for ViT backbones only; ResNets keep the SGD settings above."""

    lr: float = Field(5e-4, gt=0)
    """Base learning rate per 256 images (MAE's blr): the rate is lr x batch_size / 256."""
    layer_decay: float = Field(0.65, gt=0, le=1)
    """Layer-wise decay: block i of d learns at layer_decay^(d - i) of the head's rate (MAE ViT-B,
    iBOT ViT-B: 0.65; iBOT ViT-S: 0.75)."""
    weight_decay: float = Field(0.05, ge=0)
    """AdamW's weight decay (MAE, iBOT, MoCo v3)."""
    warmup_epochs: float = Field(0.5, ge=0)
    """Epochs of linear warm-up (MAE: 5 of 100; here 0.5 of the default 10)."""


class FinetuneConfig(EvaluationSettings):
    kind: ClassVar[str] = "finetune"
    order: ClassVar[int] = 2
    summary: ClassVar[str] = "Full fine-tuning."
    enabled: bool = True
    """Fine-tune the whole network with a linear head (Liu et al.'s OOD protocol)."""
    epochs: int = Field(10, ge=1)
    """Fine-tuning epochs; the epoch kept is the best on val (balanced accuracy)."""
    batch_size: int = Field(128, ge=2)
    """Fine-tuning batch size."""
    lr: float = Field(0.05, gt=0)
    """Learning rate of the head."""
    backbone_lr_mult: float = Field(0.1, ge=0)
    """The backbone's learning rate as a multiple of lr."""
    weight_decay: float = Field(5e-4, ge=0)
    """Weight decay of fine-tuning."""
    loss: LossName = "ce"
    """Fine-tuning loss (as methods[supervised].loss)."""
    sampler: SamplerName = "instance"
    """Fine-tuning batch sampling (as methods[supervised].sampler)."""
    train_on: list[Literal["own", "imbalanced"]] = Field(default_factory=lambda: ["own"])
    """own: fine-tune on the arm's own subset (end-to-end gap); imbalanced: every representation on
    the main imbalanced subset (cross-scenario comparison, no gap)."""
    vit: ViTFinetuneConfig = Field(default_factory=ViTFinetuneConfig)
    """Fine-tuning of vision transformers (these replace lr, backbone_lr_mult, weight_decay)."""


class EvaluationConfig(Strict):
    """The shared probe set, and one key per registered kind of evaluation (`linear`, `knn`,
    `finetune`, `linear_sgd`, and any kind a study imports), added as each kind is defined."""

    probe_set: Literal["disjoint", "pool"] = "disjoint"
    """The balanced labelled set of the linear probe and kNN. disjoint: drawn apart from every
    pretraining subset; pool: Liu et al.'s protocol, the largest balanced set of the whole train
    pool (it overlaps the subsets)."""
    probe_per_class: int | None = Field(None, ge=1)
    """Images per class of the probe set; None: the largest the protocol allows (disjoint with n
    unset: half the smallest class)."""

    def kinds(self) -> list[EvaluationSettings]:
        """The settings of every registered kind, enabled or not, in registration order."""
        # a config made before a kind registered holds none of its settings: their defaults
        return [self.__dict__.get(kind) or settings() for kind, settings in _KINDS.items()]


_SHARED_KEYS: tuple[str, ...] = tuple(EvaluationConfig.model_fields)
_accept_registered_kinds()

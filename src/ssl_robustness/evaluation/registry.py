"""The evaluation-kind registry, keyed by a kind's settings class (as `methods/registry.py`
keys methods).

A kind of evaluation is one file: its settings (a `config.EvaluationSettings` subclass naming
its `kind`, which adds the key `evaluation.<kind>` to the study config) and its code, an
`EvaluationKind` subclass decorated with `register_evaluation(settings)`. It says which
evaluations its settings ask for (`specs`: a name, what each adapts on, what keys its
directory), whether it trains (`fit`: fine-tuning's epochs and batch size, priced by `--plan`)
or reads frozen features only (`reads`), what it refuses before a study starts (`check`), and
how it runs (`run`: test-set scores and what to record beside them). `evaluation/kinds.py`
loads the built-in kinds and lists the evaluations of a config; `evaluation/run.py` runs every
kind the same way; the tables read its rows by name (which must be unique across kinds).

    @register_evaluation(CentroidConfig)
    class Centroid(EvaluationKind):
        reads = ("adapt", "test")

        def specs(self, s, study):
            return [EvaluationSpec("centroid", "balanced", s, {"shrink": s.shrink})]

        def run(self, job, ctx):
            ...  # fit on ctx.adapt_features(job.indices), score ctx.split_features("test")
            return Outcome(scores)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np

from ..config import (
    AugmentationConfig,
    EvaluationSettings,
    evaluation_kind_types,
    unregister_evaluation_kind,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..data.study_data import StudyData
    from ..methods.augment import ViewSpec

ADAPT = ("balanced", "own", "imbalanced")  # what an evaluation may adapt on (evaluation/run.py)


@dataclass(frozen=True)
class EvaluationSpec:
    """One configured evaluation: its `name` in every table (`linear-balanced`, `knn-k20`),
    what it adapts on, its typed settings, and what its directory is keyed by (`key`: kept as
    runs made earlier were keyed, so a finished study is read back, not rerun)."""

    name: str
    adapt: str
    settings: EvaluationSettings = field(compare=False)
    key: dict[str, Any] = field(compare=False)
    directory_base: str = ""  # its directories' names start so; default: the name
    variant: int | None = None  # what sets it apart among its kind's specs (kNN: its k)

    def __post_init__(self) -> None:
        if self.adapt not in ADAPT:
            raise ValueError(f"{self.name}: adapts on {self.adapt!r}, not one of {ADAPT}")

    @property
    def kind(self) -> str:
        return self.settings.kind

    @property
    def base(self) -> str:
        return self.directory_base or self.name


@dataclass(frozen=True)
class StudyInputs:
    """What of the study, besides a kind's own settings, shapes its evaluations."""

    augmentation: AugmentationConfig | None = None  # the study's view adjustments (fits)
    vit: bool = False  # the representation is a vision transformer

    @property
    def augmentation_key(self) -> dict[str, Any] | None:
        return self.augmentation.model_dump() if self.augmentation is not None else None


@dataclass(frozen=True)
class Fit:
    """A kind that trains: its epochs and batch size (what `--plan` and the cost table price)."""

    epochs: int
    batch_size: int


@dataclass
class EvaluationContext:
    """What a kind's `run` works with: the representation, the data and where to write."""

    backbone: nn.Module
    data: StudyData
    images: np.ndarray  # decoded at the representation's input size
    device: torch.device
    directory: Path  # this evaluation's own directory (checkpoints, best-on-val)
    seed: int  # derived from the evaluation's identity (cache_keys.evaluation_seed)
    view: ViewSpec  # the labelled-training view, with the study's adjustments
    features: Callable[[str, np.ndarray], np.ndarray]  # cached frozen features of a named set
    adapt_features_name: str  # the name the adaptation set's features are cached under

    def adapt_features(self, indices: np.ndarray) -> np.ndarray:
        return self.features(self.adapt_features_name, indices)

    def split_features(self, split: str) -> np.ndarray:
        return self.features(split, self.data.indices(split))


@dataclass(frozen=True)
class Outcome:
    """A finished evaluation: test-set class scores, and what to record beside them."""

    scores: np.ndarray
    record: dict[str, Any] = field(default_factory=dict)


S = TypeVar("S", bound=EvaluationSettings)


class EvaluationKind(Generic[S]):
    """The code of one kind of evaluation (subclass it as `EvaluationKind[ItsSettings]`,
    decorate with `register_evaluation`)."""

    reads: ClassVar[tuple[str, ...]] = ()  # frozen feature sets: "adapt", "val", "test"

    def specs(self, settings: S, study: StudyInputs) -> list[EvaluationSpec]:
        raise NotImplementedError

    def fit(self, settings: S) -> Fit | None:
        """None: it reads frozen features only (no training steps)."""
        return None

    def check(self, settings: S, data: StudyData) -> None:
        """Refuse, before any training, settings this data would silently turn into others."""

    def without_val(self, settings: S) -> str | None:
        """What it keeps when the data has no validation split (said before training)."""
        return None

    def run(self, job: Any, ctx: EvaluationContext) -> Outcome:
        """`job.spec.settings` is this kind's settings (an `S`)."""
        raise NotImplementedError


_REGISTRY: dict[type[EvaluationSettings], EvaluationKind[Any]] = {}
K = TypeVar("K", bound=type[EvaluationKind[Any]])


def register_evaluation(settings: type[EvaluationSettings]) -> Callable[[K], K]:
    """Class decorator: `evaluation.<settings.kind>` in a study config runs this kind."""
    if not settings.kind:
        raise TypeError(f"{settings.__name__}: an evaluation's settings need a `kind`")

    def register(cls: K) -> K:
        _REGISTRY[settings] = cls()
        return cls

    return register


def unregister_evaluation(settings: type[EvaluationSettings]) -> None:
    """Forget a kind, its code and its config key both (tests that add a kind clean up)."""
    _REGISTRY.pop(settings, None)
    if evaluation_kind_types().get(settings.kind) is settings:
        unregister_evaluation_kind(settings.kind)


def kind_of(settings: EvaluationSettings | type[EvaluationSettings]) -> EvaluationKind[Any]:
    key = settings if isinstance(settings, type) else type(settings)
    try:
        return _REGISTRY[key]
    except KeyError:
        raise ValueError(
            f"no evaluation registered for {key.__name__}: decorate its EvaluationKind with "
            "evaluation.registry.register_evaluation (and import its file before the study runs)"
        ) from None


def kind_of_spec(spec: EvaluationSpec) -> EvaluationKind[Any]:
    return kind_of(spec.settings)

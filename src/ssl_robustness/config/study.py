"""The whole study config: every section, and the run's folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from ..layout import RunLayout
from .base import Strict
from .data import DataConfig
from .evaluation import EvaluationConfig, on_evaluation_kinds_changed
from .imported import ImportedConfig
from .methods import MethodBase, method_config_types, method_union, on_methods_changed
from .report import ReportConfig
from .training import AugmentationConfig, BackboneConfig, TrainConfig


class StudyConfig(Strict):
    name: str = "study"
    """Name of the study (the report's title; default output folder runs/<name>)."""
    output_dir: Path | None = None
    """Where everything goes; None: runs/<name>."""
    seeds: list[int] = Field(default_factory=lambda: [0])
    """Study seeds: one representation of each arm per seed; more seeds give intervals."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """auto (cuda, then mps, then cpu), cpu, cuda or mps."""
    data: DataConfig = Field(default_factory=DataConfig)
    """The images, splits, long-tail subsets and class groups."""
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)
    """The network every trained representation uses."""
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    """Study-wide adjustments of every method's augmentations."""
    pretrain: TrainConfig = Field(default_factory=TrainConfig)
    """Settings of the training loop of every method."""
    methods: list[MethodBase] = Field(default_factory=list)
    """Methods to train on every subset: a list of items with a name (the method kinds below) and
    their settings."""
    imported: list[ImportedConfig] = Field(default_factory=list)
    """SSL backbones pretrained elsewhere (scenario SSL-ImageNet), evaluated like the trained
    ones."""
    random_init: bool = True
    """Evaluate a randomly initialised backbone too: the floor every trained representation must
    beat."""
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    """How each representation is evaluated."""
    report: ReportConfig = Field(default_factory=ReportConfig)
    """What the report draws."""

    @field_validator("output_dir", mode="before")
    @classmethod
    def _named_folder(cls, v: Any) -> Any:
        """`output_dir: ""` would be the working directory, written into without a word."""
        if isinstance(v, str) and not v.strip():
            raise ValueError("empty: name a folder (or leave the key out for runs/<name>)")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("must list at least one seed")
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        if min(v) < 0:
            raise ValueError("every seed must be >= 0")
        return v

    @model_validator(mode="after")
    def _defaults(self) -> StudyConfig:
        if self.output_dir is None:
            self.output_dir = Path("runs") / self.name
        labels = [m.label for m in self.methods]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ValueError(f"methods: two methods share the label {sorted(dup)}; vary a setting")
        return self

    @property
    def out(self) -> Path:
        assert self.output_dir is not None
        return self.output_dir

    @property
    def layout(self) -> RunLayout:
        """Where the run's files are (layout.py owns every name under output_dir)."""
        return RunLayout(self.out)


def _accept_registered_methods() -> None:
    """`methods` items validate as exactly the registered method settings."""
    if not method_config_types():
        return
    StudyConfig.model_fields["methods"] = FieldInfo.from_annotated_attribute(
        list[method_union()],
        Field(default_factory=list, description=StudyConfig.model_fields["methods"].description),
    )
    StudyConfig.model_rebuild(force=True)


on_methods_changed(_accept_registered_methods)
on_evaluation_kinds_changed(lambda: StudyConfig.model_rebuild(force=True))

"""The study config: one YAML file, validated in full before any work starts.

Every section is a pydantic model with `extra="forbid"`, so a typo is an error naming its key
path (`data.imbalanse: unknown key`) instead of a silently ignored setting. One module per
section (`data`, `training`, `methods`, `imported`, `evaluation`, `report`, the whole `study`),
reading YAML apart (`loading`); what of it keys a cache is `cache_keys.py`'s job.
"""

from __future__ import annotations

from .base import Strict
from .data import (
    SOURCES_WITH_ROOT,
    ClassesConfig,
    DataConfig,
    DuplicatesConfig,
    GroupByConfig,
    ImbalanceConfig,
    ListFilesConfig,
    SplitConfig,
    TiersConfig,
)
from .evaluation import (
    EvaluationConfig,
    EvaluationSettings,
    FinetuneConfig,
    KNNConfig,
    LinearProbeConfig,
    LinearSGDConfig,
    ViTFinetuneConfig,
    evaluation_kind_types,
    unregister_evaluation_kind,
)
from .imported import IMPORT_ARCHS, ImportedConfig
from .loading import (
    apply_override,
    builtin_config_text,
    format_validation_error,
    load_config,
    validate_config,
)
from .methods import (
    BCLConfig,
    BYOLConfig,
    ContrastiveMethodBase,
    LossName,
    MethodBase,
    MocoV2Config,
    SamplerName,
    SDCLRConfig,
    SimCLRConfig,
    SimSiamConfig,
    SupervisedConfig,
    TemperatureScheduleConfig,
    method_config_types,
    unregister_method_config,
)
from .report import ConfirmatoryConfig, ReportConfig
from .study import StudyConfig
from .training import (
    AugmentationConfig,
    BackboneConfig,
    OptimizerConfig,
    SAMConfig,
    TrainConfig,
)

__all__ = [
    "IMPORT_ARCHS",
    "SOURCES_WITH_ROOT",
    "AugmentationConfig",
    "BCLConfig",
    "BYOLConfig",
    "BackboneConfig",
    "ClassesConfig",
    "ConfirmatoryConfig",
    "ContrastiveMethodBase",
    "DataConfig",
    "DuplicatesConfig",
    "EvaluationConfig",
    "EvaluationSettings",
    "evaluation_kind_types",
    "unregister_evaluation_kind",
    "FinetuneConfig",
    "GroupByConfig",
    "TiersConfig",
    "ImbalanceConfig",
    "ImportedConfig",
    "KNNConfig",
    "LinearProbeConfig",
    "LinearSGDConfig",
    "ListFilesConfig",
    "LossName",
    "MethodBase",
    "MocoV2Config",
    "OptimizerConfig",
    "ReportConfig",
    "SAMConfig",
    "SDCLRConfig",
    "SamplerName",
    "SimCLRConfig",
    "SimSiamConfig",
    "SplitConfig",
    "Strict",
    "StudyConfig",
    "SupervisedConfig",
    "TemperatureScheduleConfig",
    "TrainConfig",
    "ViTFinetuneConfig",
    "apply_override",
    "builtin_config_text",
    "format_validation_error",
    "load_config",
    "method_config_types",
    "unregister_method_config",
    "validate_config",
]

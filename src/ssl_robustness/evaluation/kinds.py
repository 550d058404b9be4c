"""The evaluations a config asks for: the built-in kinds loaded (importing them registers them)
and every enabled kind's specs listed in the kinds' `order`, names unique across kinds."""

from __future__ import annotations

from typing import Any

from ..config import AugmentationConfig, EvaluationConfig, EvaluationSettings
from ..errors import UserError
from . import finetune, knn, linear_probe, linear_sgd  # noqa: F401 - the built-in kinds register
from .registry import EvaluationKind, EvaluationSpec, StudyInputs, kind_of


def enabled_kinds(cfg: EvaluationConfig) -> list[tuple[EvaluationSettings, EvaluationKind[Any]]]:
    """Every enabled kind's settings and code, in the kinds' `order` (then registration)."""
    enabled = [s for s in cfg.kinds() if s.enabled]
    return [(s, kind_of(s)) for s in sorted(enabled, key=lambda s: s.order)]


def evaluation_specs(
    cfg: EvaluationConfig, augmentation: AugmentationConfig | None = None, *, vit: bool = False
) -> list[EvaluationSpec]:
    """Every configured evaluation of a representation (`vit`: a vision transformer's), in the
    order they run and their rows appear."""
    study = StudyInputs(augmentation, vit)
    specs = [spec for s, kind in enabled_kinds(cfg) for spec in kind.specs(s, study)]
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise UserError(
                f"evaluation.{spec.kind}: its evaluation {spec.name!r} has the name of one of "
                f"evaluation.{seen[spec.name]}'s; every row of the tables needs its own name"
            )
        seen[spec.name] = spec.kind
    return specs

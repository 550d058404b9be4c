"""The whole study in one call: data -> representations -> evaluations -> tables -> report.

Runs live in directories keyed by the hash of what made them, so a re-run (or the same study
with one more seed or method) does only what is missing, and an interrupted run resumes.
"""

from __future__ import annotations

import platform
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from . import __version__
from .atomic import remove_orphan_temps, write_json, write_text
from .config import StudyConfig
from .data.prepare import StudyData, prepare_data
from .engine.device import resolve_device
from .evaluation.run import evaluate_representation
from .report.tables import StudyTables, build_tables, write_tables
from .representations import (
    RepresentationSpec,
    expand_representations,
    obtain_representation,
    representation_status,
)


@dataclass
class StudyResult:
    tables: StudyTables
    failures: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None


def save_study_config(cfg: StudyConfig) -> None:
    run = cfg.layout
    run.root.mkdir(parents=True, exist_ok=True)
    write_text(run.config, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    write_json(run.environment, environment())


def environment() -> dict[str, Any]:
    import numpy
    import sklearn
    import torchvision

    return {
        "ssl_robustness": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run_study(cfg: StudyConfig, *, log=print) -> StudyResult:  # noqa: ANN001
    """Run (or resume) every representation and evaluation; write tables and the report."""
    from .report.html import write_report

    save_study_config(cfg)
    remove_orphan_temps(cfg.out, min_age_s=0)  # a killed run's; this run holds the directory
    device = resolve_device(cfg.device)
    run = cfg.layout
    data = prepare_data(cfg.data, run.data.path, cfg.evaluation, cfg.seeds)
    specs = expand_representations(cfg, data)
    log(
        f"study '{cfg.name}': {len(specs)} representations on {device}, "
        f"subsets {[f'{p.name} (n={p.size})' for p in data.plans]}"
    )
    records: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for i, spec in enumerate(specs, 1):
        status = representation_status(spec, cfg.out)
        log(f"[{i}/{len(specs)}] {spec.scenario:13s} {spec.name} ({status})")
        try:
            records += run_representation(spec, cfg, data, device)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one failed run must not sink the study
            failures.append(
                {
                    "representation": spec.name,
                    "scenario": spec.scenario,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=6),
                }
            )
            log(f"    FAILED: {type(exc).__name__}: {exc}")
    tables = build_tables(records, data, failures)
    write_tables(tables, run.tables)
    write_json(run.failures, failures)
    report = write_report(cfg.out)
    return StudyResult(tables, failures, report)


def run_representation(
    spec: RepresentationSpec, cfg: StudyConfig, data: StudyData, device: torch.device
) -> list[dict[str, Any]]:
    """Obtain one representation (trained, imported or read back) and run its evaluations;
    one record per evaluation job."""
    backbone, info = obtain_representation(spec, cfg, data, device)
    return [
        {"spec": spec, "info": info, "job": job, "directory": directory, "result": result}
        for job, directory, result in evaluate_representation(
            backbone,
            data,
            cfg.evaluation,
            spec.layout(cfg.layout).path,
            spec.seed,
            device,
            cfg.augmentation,
            subset=spec.subset,
            image_size=spec.input_size,
        )
    ]

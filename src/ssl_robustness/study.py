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
from .evaluation.run import evaluate_representation, evaluation_jobs, evaluation_specs
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
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_text(
        cfg.out / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    )
    write_json(cfg.out / "environment.json", environment())


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


def plan_rows(cfg: StudyConfig, data: StudyData) -> list[dict[str, Any]]:
    """One row per representation: what it is, whether it is cached, and its work in image
    passes (pretraining views x epochs x images, plus fine-tuning)."""
    rows = []
    evals = evaluation_specs(cfg.evaluation)
    for spec in expand_representations(cfg, data):
        jobs = evaluation_jobs(evals, data, spec.seed, spec.subset)
        n_evals = len(jobs)
        ft_work = sum(
            j.spec.settings["epochs"] * len(j.indices)
            for j in jobs
            if j.spec.kind != "linear" and j.spec.kind != "knn"
        )
        work = 0
        if spec.subset is not None:
            views = 1 if spec.scenario == "SL" else 2
            size = len(data.draw(spec.seed).subsets[spec.subset])
            work = views * spec.settings["train"]["epochs"] * size
        rows.append(
            {
                "representation": spec.name,
                "scenario": spec.scenario,
                "subset": spec.subset or "-",
                "seed": spec.seed,
                "status": representation_status(spec, cfg.out),
                "evaluations": n_evals,
                "image_passes": work + ft_work,
            }
        )
    return rows


def run_study(cfg: StudyConfig, *, log=print) -> StudyResult:  # noqa: ANN001
    """Run (or resume) every representation and evaluation; write tables and the report."""
    from .report.html import write_report

    save_study_config(cfg)
    remove_orphan_temps(cfg.out, min_age_s=0)  # a killed run's; this run holds the directory
    device = resolve_device(cfg.device)
    data = prepare_data(cfg.data, cfg.out / "data", cfg.evaluation, cfg.seeds)
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
            records += _run_one(spec, cfg, data, device)
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
    write_tables(tables, cfg.out / "tables")
    write_json(cfg.out / "failures.json", failures)
    report = write_report(cfg.out)
    return StudyResult(tables, failures, report)


def _run_one(
    spec: RepresentationSpec, cfg: StudyConfig, data: StudyData, device: torch.device
) -> list[dict[str, Any]]:
    backbone, info = obtain_representation(spec, cfg, data, device)
    return [
        {"spec": spec, "info": info, "job": job, "directory": directory, "result": result}
        for job, directory, result in evaluate_representation(
            backbone,
            data,
            cfg.evaluation,
            spec.directory(cfg.out),
            spec.seed,
            device,
            cfg.augmentation,
            subset=spec.subset,
            image_size=spec.settings.get("input_size"),
        )
    ]

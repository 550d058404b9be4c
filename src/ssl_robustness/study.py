"""The whole study in one call: data -> representations -> evaluations -> tables -> report.

Runs live in directories keyed by the hash of what made them, so a re-run (or the same study
with one more seed or method) does only what is missing, and an interrupted run resumes.
"""

from __future__ import annotations

import contextlib
import platform
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from . import __version__
from .atomic import DiskFull, remove_orphan_temps, write_json, write_text
from .config import EvaluationConfig, StudyConfig
from .data.prepare import prepare_data
from .data.study_data import StudyData
from .engine.device import resolve_device
from .engine.distributed import barrier, is_distributed, is_main, local_only, world_size
from .engine.logger import study_progress
from .errors import UserError
from .evaluation.kinds import enabled_kinds
from .evaluation.run import check_evaluation_sizes, evaluate_representation
from .layout import RunLayout
from .lock import held_elsewhere, output_lock
from .plan import batch_notes, study_work
from .registration import check_confirmatory, register
from .report.content import NOTES_FILE
from .report.tables import StudyTables, build_tables, write_tables
from .representations import (
    RepresentationSpec,
    expand_representations,
    obtain_representation,
    representation_status,
)


@dataclass
class StudyResult:
    tables: StudyTables | None  # None on the processes other than rank 0
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
    """Run (or resume) every representation and evaluation; write tables and the report.

    Launched by torchrun, every process trains each representation data-parallel; rank 0
    evaluates, writes the tables and the report, the others return without tables."""
    from .report.render import write_report

    data, device, specs = start_study(cfg, owner=True)
    run = cfg.layout
    if is_main():
        log(
            f"study '{cfg.name}': {len(specs)} representations on {device}"
            f"{f' x {world_size()} processes' if is_distributed() else ''}, "
            f"subsets {[f'{p.name} (n={p.size})' for p in data.plans]}"
        )
        notes = size_notes(cfg, data, specs)
        for note in notes:
            log(f"note: {note}")
        write_json(cfg.out / NOTES_FILE, notes)  # the report says them too
    records, failures = run_specs(specs, cfg, data, device, log=log)
    if not is_main():
        return StudyResult(None, failures)
    tables = build_tables(records, data, failures)
    write_tables(tables, run.tables)
    write_json(run.failures, failures)
    report = write_report(cfg.out)
    return StudyResult(tables, failures, report)


def check_imported(cfg: StudyConfig) -> None:
    """Load each `imported` file strictly before the first training: a truncated, pickled,
    mis-keyed, NaN or non-ResNet file is an error naming it, not a failed run once the study
    has trained everything else. (Published weights are fetched and checksum-verified when
    their representation starts.)"""
    from .models.hub import load_imported

    for i, imp in enumerate(cfg.imported):
        if imp.path is not None:
            try:
                load_imported(imp)
            except UserError as exc:
                raise UserError(f"imported.{i} ({imp.name}): {exc}") from None


def start_study(
    cfg: StudyConfig, *, owner: bool, jobs_may_run: bool = False
) -> tuple[StudyData, torch.device, list[RepresentationSpec]]:
    """The data (prepared by rank 0 first: the others read its cache), the device and the
    representations. The `owner` of the run directory (a `run` or the process submitting a
    cluster study, not one job of it) saves the config and clears a killed run's temp files
    first; see `clear_orphan_temps` for `jobs_may_run`."""
    check_confirmatory(cfg)  # a test the study cannot make fails before any work
    check_imported(cfg)  # so does a checkpoint file that cannot load
    if is_main():
        if owner:
            save_study_config(cfg)
            clear_orphan_temps(cfg, jobs_may_run=jobs_may_run)
        data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
        if owner:
            register(cfg, data)  # before the first training: the report reads the test here
    barrier()
    if not is_main():
        data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    check_evaluation_sizes(cfg.evaluation, data)
    return data, resolve_device(cfg.device), expand_representations(cfg, data)


def size_notes(cfg: StudyConfig, data: StudyData, specs: list[RepresentationSpec]) -> list[str]:
    """Said before training: batches larger than the images they draw from (each epoch is then
    one step over all of them, not the configured size), and what is kept without a
    validation split (nothing can be selected on it)."""
    notes: dict[str, str] = {}
    kinds = enabled_kinds(cfg.evaluation)
    if not len(data.indices("val")):
        for settings, kind in kinds:
            note = kind.without_val(settings)
            if note is not None:
                notes.setdefault(note, note)
    for note in batch_notes(cfg, data, specs):
        notes.setdefault(note, note)
    return list(notes.values())


def clear_orphan_temps(cfg: StudyConfig, *, jobs_may_run: bool) -> list[Path]:
    """Remove the temp files a killed run left. Every one at once only when no job can be
    writing: not while submitting (`jobs_may_run`: an earlier submission's jobs may still
    run) nor while another worker holds a representation's lock; then only those older than
    `remove_orphan_temps`'s default age, so a running job's fresh temp file survives."""
    if jobs_may_run or any(held_elsewhere(d) for d in _representation_dirs(cfg)):
        return remove_orphan_temps(cfg.out)
    return remove_orphan_temps(cfg.out, min_age_s=0)  # nobody else writes here


def _representation_dirs(cfg: StudyConfig) -> list[Path]:
    root = cfg.layout.representations
    return sorted(d for d in root.iterdir() if d.is_dir()) if root.is_dir() else []


def run_specs(
    specs: list[RepresentationSpec],
    cfg: StudyConfig,
    data: StudyData,
    device: torch.device,
    *,
    log=print,  # noqa: ANN001
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train and evaluate `specs`: (evaluation records, failures), both empty off rank 0.

    Under a process group every process first trains each representation together (DDP);
    then rank 0 alone evaluates them, reading the backbones back from disk. Each
    representation is worked on under its directory's lock, so two workers (a resubmitted
    study, a second node) never train one twice: the second waits, then finds it cached."""
    failures: list[dict[str, Any]] = []
    if is_distributed():
        failures = _train_together(specs, cfg, data, device, log)
        if not is_main():
            return [], failures
    failed = {f["directory"] for f in failures}
    records: list[dict[str, Any]] = []
    # the input sizes of the imported backbones this process evaluates, decoded before the
    # first representation rather than midway through its first evaluation
    assert data.store is not None
    data.store.prepare(s.input_size for s in specs if s.input_size and s.dirname not in failed)
    with local_only(), study_progress(study_work(cfg, data, specs)) as progress:
        for i, spec in enumerate(specs, 1):
            if spec.dirname in failed:
                continue
            status = representation_status(spec, cfg.out)
            log(f"[{i}/{len(specs)}] {spec.scenario:13s} {spec.name} ({status})")
            try:
                lock = representation_lock(spec, cfg, log)
                with lock, progress.representation(spec.dirname, spec.name):  # epoch lines
                    records += run_representation(spec, cfg.evaluation, cfg.layout, data, device)
            except (KeyboardInterrupt, DiskFull):  # a full disk fails every later run too
                raise
            except Exception as exc:  # noqa: BLE001 - one failed run must not sink the study
                failures.append(_failure(spec, exc))
                log(f"    FAILED: {type(exc).__name__}: {exc}")
    return records, failures


def _train_together(
    specs: list[RepresentationSpec],
    cfg: StudyConfig,
    data: StudyData,
    device: torch.device,
    log,  # noqa: ANN001
) -> list[dict[str, Any]]:
    """Every process of the group trains each representation data-parallel; rank 0 holds the
    representation's lock meanwhile and writes its files. The failures, on rank 0."""
    _check_global_batches(specs)
    failures: list[dict[str, Any]] = []
    for i, spec in enumerate(specs, 1):
        lock = representation_lock(spec, cfg, log) if is_main() else contextlib.nullcontext()
        with lock:
            barrier()  # the others wait while rank 0 waits for the lock
            if is_main():
                status = representation_status(spec, cfg.out)
                log(f"[{i}/{len(specs)}] train {spec.name} on {world_size()} processes ({status})")
            try:
                obtain_representation(spec, cfg.layout, data, device)
            except (KeyboardInterrupt, DiskFull):
                raise
            except Exception as exc:  # noqa: BLE001 - one failed run must not sink the study
                failures.append(_failure(spec, exc))
                if is_main():
                    log(f"    FAILED: {type(exc).__name__}: {exc}")
            barrier()
    return failures if is_main() else []


def _check_global_batches(specs: list[RepresentationSpec]) -> None:
    """Each process takes batch_size / world_size: the global batch is the configured one."""
    for spec in specs:
        if spec.train is not None and spec.train.batch_size % world_size():
            raise UserError(
                f"pretrain.batch_size (or methods[{spec.method}].batch_size): "
                f"{spec.train.batch_size} is not divisible by the {world_size()} processes; "
                "each process takes an equal share of the global batch"
            )


def representation_lock(spec: RepresentationSpec, cfg: StudyConfig, log=print):  # noqa: ANN001, ANN201
    """The lock of the representation's directory, waited for when another worker holds it."""
    directory = spec.layout(cfg.layout).path
    return output_lock(
        directory,
        f"train {spec.name}",
        wait=True,
        on_wait=lambda who: log(f"    waiting for {who} (it works on {spec.name})"),
    )


def _failure(spec: RepresentationSpec, exc: BaseException) -> dict[str, Any]:
    return {
        "representation": spec.name,
        "scenario": spec.scenario,
        "method": spec.method,
        "subset": spec.subset,  # None: a fixed representation (imported, random init)
        "seed": spec.seed,
        "directory": spec.dirname,
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": traceback.format_exc(limit=6),
    }


def run_representation(
    spec: RepresentationSpec,
    evaluation: EvaluationConfig,
    run: RunLayout,
    data: StudyData,
    device: torch.device,
) -> list[dict[str, Any]]:
    """Obtain one representation (trained, imported or read back) and run its evaluations;
    one record per evaluation job."""
    backbone, info = obtain_representation(spec, run, data, device)
    return [
        {"spec": spec, "info": info, "job": job, "directory": directory, "result": result}
        for job, directory, result in announce_slow(
            evaluate_representation(
                backbone,
                data,
                evaluation,
                spec.layout(run).path,
                spec.seed,
                device,
                spec.augmentation,
                subset=spec.subset,
                image_size=spec.input_size,
            ),
            spec.name,
        )
    ]


SLOW_EVALUATION_S = 5.0  # an evaluation longer than this says so when it ends


def announce_slow(evaluations: Iterator[tuple[Any, Path, dict[str, Any]]], name: str) -> Iterator:
    """Pass the evaluations through; one that took over SLOW_EVALUATION_S prints a flushed line
    on stderr when it ends (a log shows the study alive between the epochs' lines)."""
    started = time.perf_counter()
    for i, item in enumerate(evaluations, 1):
        took = time.perf_counter() - started
        if took >= SLOW_EVALUATION_S:
            print(
                f"    {name}: evaluation {i} ({item[0].label}) in {took:.0f}s",
                file=sys.stderr,
                flush=True,
            )
        yield item
        started = time.perf_counter()

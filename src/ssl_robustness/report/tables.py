"""The study's tidy tables: results, per-class, aggregated over seeds, and the gaps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..data.study_data import StudyData
from ..evaluation.metrics import seed_summary
from ..evaluation.outputs import read_predictions, saved_prediction_metrics
from ..faults import reached
from ..layout import TABLES, RepresentationLayout, table_file
from .gaps import FLOOR_METRICS, GAP_METRICS, gap_tables, learned_rel_gap, with_floor
from .group_intervals import GROUP_INTERVALS, HeldOutGroups, group_interval_table

__all__ = [
    "FLOOR_METRICS",
    "GAP_METRICS",
    "StudyTables",
    "build_tables",
    "gap_tables",
    "learned_rel_gap",
    "load_tables",
    "with_floor",
    "write_tables",
]

METRICS = ("top1", "top5", "balanced_accuracy", "macro_f1", "head", "medium", "tail")
KEYS = ["scenario", "method", "subset", "evaluation", "comparison"]


@dataclass
class StudyTables:
    results: pd.DataFrame
    per_class: pd.DataFrame
    aggregate: pd.DataFrame
    gaps: pd.DataFrame
    gap_runs: pd.DataFrame
    # data.group_by studies: tier and class intervals that resample the test groups
    test_group_intervals: pd.DataFrame | None = None


def build_tables(
    records: list[dict[str, Any]], data: StudyData, failures: list[dict[str, Any]] | None = None
) -> StudyTables:
    """Tables from the saved predictions: every metric (tiers, per-class, balanced accuracy)
    is derived here from the current data plan, never read from a cached summary."""
    rows, pc_rows = [], []
    hits: dict[tuple, list[tuple[int, np.ndarray, np.ndarray]]] = {}
    for r in records:
        spec, info, job = r["spec"], r["info"], r["job"]
        drawn = data.draw(spec.seed)
        plan = next((p for p in drawn.plans if p.name == job.arm), None)
        predictions = read_predictions(Path(r["directory"]))
        metrics, per_class = saved_prediction_metrics(predictions, drawn.tiers, data.num_classes)
        key = (spec.scenario, spec.method, job.arm or "-", job.spec.name, job.comparison)
        correct = (predictions["label"] == predictions["prediction"]).to_numpy()
        hits.setdefault(key, []).append((spec.seed, correct, np.asarray(drawn.tiers)))
        common = {
            "representation": spec.name,
            "scenario": spec.scenario,
            "method": spec.method,
            "subset": job.arm or "-",
            "seed": spec.seed,
            "evaluation": job.spec.name,
            "comparison": job.comparison,
        }
        row = {
            **common,
            "rep_dir": RepresentationLayout.of_evaluation(Path(r["directory"])).name,
            "level": plan.level if plan else np.nan,
            "balanced": plan.balanced if plan else None,
            "matched": plan.matched if plan else None,
            "n": plan.size if plan else np.nan,
            "adapt_on": job.adapt_on,
            "status": "ok",
            "collapsed": bool(info.get("collapsed", False)),
            "collapse_ratio": info.get("collapse_ratio"),
            "possibly_undertrained": possibly_undertrained(r.get("result") or {}),
            "error": "",
            **{m: metrics.get(m, np.nan) for m in METRICS},
        }
        rows.append(row)
        main_counts = drawn.counts(drawn.imbalanced_name, data.labels, data.num_classes)
        arm_counts = (
            drawn.counts(job.arm, data.labels, data.num_classes)
            if plan
            else np.zeros_like(main_counts)
        )
        for c, name in enumerate(data.class_names):
            pc_rows.append(
                {
                    **common,
                    "class": name,
                    "train_count": int(main_counts[c]),
                    "arm_count": int(arm_counts[c]),
                    "tier": str(drawn.tiers[c]),
                    "accuracy": per_class[c],
                }
            )
    for f in failures or []:
        rows.append(
            {
                "representation": f["representation"],
                "scenario": f["scenario"],
                # where it failed (older failure records lack these)
                "method": f.get("method"),
                "subset": f.get("subset") or "-",
                "seed": f.get("seed"),
                "status": "failed",
                "error": f["error"],
            }
        )
    results = with_floor(pd.DataFrame(rows, columns=RESULT_COLUMNS))
    per_class = pd.DataFrame(pc_rows, columns=PER_CLASS_COLUMNS)
    ok = results[results["status"] == "ok"]
    aggregate = aggregate_over_seeds(ok)
    gap_runs, gaps = gap_tables(ok, data.balanced_name)
    intervals = _group_intervals(hits, data)
    return StudyTables(results, per_class, aggregate, gaps, gap_runs, intervals)


def _group_intervals(
    hits: dict[tuple, list[tuple[int, np.ndarray, np.ndarray]]], data: StudyData
) -> pd.DataFrame | None:
    """With data.group_by: every tier's and class's interval over seeds and test groups."""
    if data.cfg.group_by is None or data.item_group is None or not hits:
        return None
    test = data.indices("test")
    tg = HeldOutGroups(data.labels[test], np.asarray(data.item_group[test]), data.num_classes)
    stacked = {}
    for key, runs in hits.items():
        runs = sorted(runs, key=lambda run: run[0])
        if any(len(h) != len(test) for _, h, _ in runs):
            continue  # predictions of another test set: not comparable
        stacked[key] = (np.stack([h for _, h, _ in runs]), np.stack([t for _, _, t in runs]))
    return group_interval_table(stacked, tg, data.class_names, KEYS)


RESULT_COLUMNS = [
    "representation",
    "rep_dir",
    "scenario",
    "method",
    "subset",
    "level",
    "balanced",
    "matched",
    "n",
    "seed",
    "evaluation",
    "adapt_on",
    "comparison",
    "status",
    *METRICS,
    "collapsed",
    "collapse_ratio",
    "possibly_undertrained",
    "floor_top1",
    "floor_balanced_accuracy",
    "over_floor",
    "error",
]
PER_CLASS_COLUMNS = [
    "representation",
    "scenario",
    "method",
    "subset",
    "seed",
    "evaluation",
    "comparison",
    "class",
    "train_count",
    "arm_count",
    "tier",
    "accuracy",
]


def possibly_undertrained(result: dict[str, Any]) -> bool | None:
    """True when a fine-tune kept its last epoch as the best on validation (it was still
    improving, so more epochs might change its numbers); None where no epoch was selected
    (probes, kNN, no validation split)."""
    selected = result.get("selected")
    if not isinstance(selected, dict) or "epoch" not in selected:
        return None
    epochs = selected.get("epochs", result.get("epochs"))
    if epochs is None:
        return None
    return int(selected["epoch"]) >= int(epochs) - 1  # epochs count from 0


def aggregate_over_seeds(results: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for key, grp in results.groupby(KEYS, sort=False):
        row = dict(zip(KEYS, key, strict=True))
        row["seeds"] = len(grp)
        flags = grp["possibly_undertrained"] if "possibly_undertrained" in grp else pd.Series()
        row["undertrained_seeds"] = int((flags.astype(str) == "True").sum())
        for m in METRICS:
            s = seed_summary(grp[m].astype(float).tolist())
            row.update({f"{m}_mean": s["mean"], f"{m}_std": s["std"], f"{m}_ci95": s["ci95"]})
        rows.append(row)
    return pd.DataFrame(rows)


def write_tables(tables: StudyTables, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if tables.test_group_intervals is not None:
        with atomic_path(table_file(directory, GROUP_INTERVALS, "csv")) as tmp:
            tables.test_group_intervals.to_csv(tmp, index=False)
    for name in TABLES:
        reached("tables")  # failpoint: tests kill between two table files (faults.py)
        df: pd.DataFrame = getattr(tables, name)
        with atomic_path(table_file(directory, name, "csv")) as tmp:
            df.to_csv(tmp, index=False)
        with atomic_path(table_file(directory, name, "parquet")) as tmp:
            _for_parquet(df).to_parquet(tmp, index=False)


def _for_parquet(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            values = out[col].dropna()
            if len(values) and not all(isinstance(v, str) for v in values):
                out[col] = out[col].astype(str)
    return out


def load_tables(directory: Path) -> StudyTables:
    """Read a finished study's tables (CSV) back, e.g. for `report` or a notebook."""
    extra = table_file(directory, GROUP_INTERVALS)
    intervals = _read_csv(extra) if extra.exists() else None
    return StudyTables(*(_read_csv(table_file(directory, n)) for n in TABLES), intervals)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()

"""The study's tidy tables: results, per-class, aggregated over seeds, and the gaps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..data.study_data import StudyData
from ..evaluation.metrics import gap, seed_summary
from ..evaluation.outputs import read_predictions, saved_prediction_metrics
from ..faults import reached
from ..layout import TABLES, RepresentationLayout, table_file
from .floor import below_floor_margin

METRICS = ("top1", "top5", "balanced_accuracy", "macro_f1", "head", "medium", "tail")
GAP_METRICS = ("top1", "balanced_accuracy", "head", "medium", "tail")
KEYS = ["scenario", "method", "subset", "evaluation", "comparison"]


@dataclass
class StudyTables:
    results: pd.DataFrame
    per_class: pd.DataFrame
    aggregate: pd.DataFrame
    gaps: pd.DataFrame
    gap_runs: pd.DataFrame


def build_tables(
    records: list[dict[str, Any]], data: StudyData, failures: list[dict[str, Any]] | None = None
) -> StudyTables:
    """Tables from the saved predictions: every metric (groups, per-class, balanced accuracy)
    is derived here from the current data plan, never read from a cached summary."""
    rows, pc_rows = [], []
    for r in records:
        spec, info, job = r["spec"], r["info"], r["job"]
        drawn = data.draw(spec.seed)
        plan = next((p for p in drawn.plans if p.name == job.arm), None)
        metrics, per_class = saved_prediction_metrics(
            read_predictions(Path(r["directory"])), drawn.groups, data.num_classes
        )
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
                    "group": str(drawn.groups[c]),
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
    return StudyTables(results, per_class, aggregate, gaps, gap_runs)


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
    "group",
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


FLOOR_METRICS = ("top1", "balanced_accuracy")  # the metrics a verdict can use


def with_floor(results: pd.DataFrame) -> pd.DataFrame:
    """Each trained representation's row gets the random-init floor of the same seed,
    evaluation and adaptation (`floor_top1`, `floor_balanced_accuracy`) and its top-1 margin
    over it (`over_floor`)."""
    out = results.copy()
    floor = out[(out["scenario"] == "random-init") & (out["status"] == "ok")]
    key = {}
    for r in floor.itertuples():
        # a probe or cross-scenario floor has no arm; an own-subset floor has one per subset
        arm = r.subset if r.comparison == "fixed-representation" else "-"
        key[(r.seed, r.evaluation, arm)] = r
    for m in (m for m in FLOOR_METRICS if m in out.columns):  # tables built without a metric
        values = []
        for r in out.itertuples():
            arm = r.subset if r.comparison == "end-to-end" else "-"
            trained = r.scenario in ("SL", "SSL-in-domain") and r.status == "ok"
            hit = key.get((r.seed, r.evaluation, arm)) if trained else None
            values.append(getattr(hit, m) if hit is not None else np.nan)
        out[f"floor_{m}"] = values
    out["over_floor"] = out["top1"].astype(float) - out["floor_top1"].astype(float)
    return out


def learned_rel_gap(
    balanced: float, imbalanced: float, floor: float, imbalanced_floor: float | None = None
) -> float:
    """Δ_learned = ((A(n,1) − F(n,1)) − (A(n,r) − F(n,r))) / (A(n,1) − F(n,1)): the share of what
    the balanced arm learned beyond its own random-init floor that the imbalanced arm, over its
    own floor, does not. Each arm is measured against its own floor: where a random network is
    probed on each arm's own data (end-to-end gaps) the imbalanced arm's floor is lower, and
    subtracting the balanced arm's from both would charge that difference to the method.
    Liu et al.'s Δ divides by A(n,1), floor included, so a representation that learned nothing
    looks perfectly robust. Undefined (NaN) where the balanced arm learned ~nothing: within the
    near-floor margin of its floor (rounded to 0.1 points), where the ratio explodes.

    >>> round(learned_rel_gap(0.5, 0.45, 0.3), 6), learned_rel_gap(0.31, 0.3, 0.3)
    (0.25, nan)
    >>> round(learned_rel_gap(0.50, 0.40, 0.30, 0.25), 6)  # lost 0.05 of the 0.20 learned
    0.25
    """
    own = floor if imbalanced_floor is None else imbalanced_floor
    learned = balanced - floor
    if not (np.isfinite(learned) and np.isfinite(own)) or below_floor_margin(learned):
        return float("nan")
    return (learned - (imbalanced - own)) / learned


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


GAP_KEYS = ["scenario", "method", "evaluation", "comparison"]
NO_GAP = ("cross-scenario",)


def gap_tables(results: pd.DataFrame, balanced: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per seed: A(n,1) - A(n,r) and its relative form, only where the two arms differ in
    balance alone (matched subsets; not the cross-scenario evaluations); then over seeds."""
    armed = results[
        (results["subset"] != "-")
        & ~results["comparison"].isin(NO_GAP)
        & (results["matched"].astype(str) != "False")
    ]
    run_rows = []
    for key, grp in armed.groupby([*GAP_KEYS, "seed"], sort=False):
        ref = grp[grp["subset"] == balanced]
        if ref.empty:
            continue
        for _, other in grp[grp["subset"] != balanced].iterrows():
            row = dict(zip([*GAP_KEYS, "seed"], key, strict=True))
            row.update(subset=other["subset"], level=other["level"])
            for m in GAP_METRICS:
                a, r = gap(float(ref.iloc[0][m]), float(other[m]))
                row[f"{m}_gap"], row[f"{m}_rel_gap"] = a, r
            for m in FLOOR_METRICS:  # the arms' own accuracies and the gap of what was learned
                bal, imb = float(ref.iloc[0][m]), float(other[m])
                floor = float(ref.iloc[0].get(f"floor_{m}", np.nan))
                own_floor = float(other.get(f"floor_{m}", np.nan))
                row[f"{m}_balanced_arm"], row[f"{m}_imbalanced_arm"] = bal, imb
                row[f"{m}_floor"] = floor
                row[f"{m}_imbalanced_floor"] = own_floor
                row[f"{m}_learned_rel_gap"] = learned_rel_gap(bal, imb, floor, own_floor)
            run_rows.append(row)
    gap_runs = pd.DataFrame(run_rows)
    rows = []
    if not gap_runs.empty:
        for key, grp in gap_runs.groupby([*GAP_KEYS, "subset"], sort=False):
            row = dict(zip([*GAP_KEYS, "subset"], key, strict=True))
            row["level"], row["seeds"] = grp["level"].iloc[0], len(grp)
            for m in GAP_METRICS:
                learned = ("learned_rel_gap",) if m in FLOOR_METRICS else ()
                for kind in ("gap", "rel_gap", *learned):
                    s = seed_summary(grp[f"{m}_{kind}"].tolist())
                    row.update(
                        {
                            f"{m}_{kind}_mean": s["mean"],
                            f"{m}_{kind}_std": s["std"],
                            f"{m}_{kind}_ci95": s["ci95"],
                        }
                    )
            rows.append(row)
    return gap_runs, pd.DataFrame(rows)


def write_tables(tables: StudyTables, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
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
    return StudyTables(*(_read_csv(table_file(directory, n)) for n in TABLES))


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()

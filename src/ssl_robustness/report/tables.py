"""The study's tidy tables: results, per-class, aggregated over seeds, and the gaps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..data.prepare import StudyData
from ..evaluation.metrics import gap, seed_summary

METRICS = ("top1", "top5", "balanced_accuracy", "macro_f1", "head", "medium", "tail")
GAP_METRICS = ("top1", "balanced_accuracy", "head", "medium", "tail")
KEYS = ["scenario", "method", "subset", "evaluation"]


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
    levels = {p.name: p for p in data.plans}
    rows, pc_rows = [], []
    for r in records:
        spec, info, res = r["spec"], r["info"], r["result"]
        plan = levels.get(spec.subset)
        row = {
            "representation": spec.name,
            "rep_dir": Path(r["directory"]).parent.parent.name,
            "scenario": spec.scenario,
            "method": spec.method,
            "subset": spec.subset or "-",
            "level": plan.level if plan else np.nan,
            "balanced": plan.balanced if plan else None,
            "n": plan.size if plan else np.nan,
            "seed": spec.seed,
            "evaluation": r["evaluation"],
            "status": "ok",
            "collapsed": bool(info.get("collapsed", False)),
            "collapse_ratio": info.get("collapse_ratio"),
            "error": "",
        }
        row.update({m: res["metrics"].get(m, np.nan) for m in METRICS})
        rows.append(row)
        pc = pd.read_csv(Path(r["directory"]) / "per_class.csv")
        for c in pc.itertuples():
            pc_rows.append(
                {
                    "representation": spec.name,
                    "scenario": spec.scenario,
                    "method": spec.method,
                    "subset": spec.subset or "-",
                    "seed": spec.seed,
                    "evaluation": r["evaluation"],
                    "class": c[1],
                    "train_count": c.train_count,
                    "group": c.group,
                    "accuracy": c.accuracy,
                }
            )
    for f in failures or []:
        rows.append(
            {
                "representation": f["representation"],
                "scenario": f["scenario"],
                "status": "failed",
                "error": f["error"],
            }
        )
    results = pd.DataFrame(rows, columns=list(_result_columns()))
    per_class = pd.DataFrame(
        pc_rows,
        columns=[
            "representation",
            "scenario",
            "method",
            "subset",
            "seed",
            "evaluation",
            "class",
            "train_count",
            "group",
            "accuracy",
        ],
    )
    ok = results[results["status"] == "ok"]
    aggregate = aggregate_over_seeds(ok)
    gap_runs, gaps = gap_tables(ok, data)
    return StudyTables(results, per_class, aggregate, gaps, gap_runs)


def _result_columns() -> list[str]:
    return [
        "representation",
        "rep_dir",
        "scenario",
        "method",
        "subset",
        "level",
        "balanced",
        "n",
        "seed",
        "evaluation",
        "status",
        *METRICS,
        "collapsed",
        "collapse_ratio",
        "error",
    ]


def aggregate_over_seeds(results: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for key, grp in results.groupby(KEYS, sort=False):
        row = dict(zip(KEYS, key, strict=True))
        row["seeds"] = len(grp)
        for m in METRICS:
            s = seed_summary(grp[m].astype(float).tolist())
            row.update({f"{m}_mean": s["mean"], f"{m}_std": s["std"], f"{m}_ci95": s["ci95"]})
        rows.append(row)
    return pd.DataFrame(rows)


def gap_tables(results: pd.DataFrame, data: StudyData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per seed: A(n,1) - A(n,r) and its relative form; then summarised over seeds."""
    bal = data.balanced_name
    trained = results[results["subset"] != "-"]
    run_rows = []
    for (scenario, method, evaluation, seed), grp in trained.groupby(
        ["scenario", "method", "evaluation", "seed"], sort=False
    ):
        ref = grp[grp["subset"] == bal]
        if ref.empty:
            continue
        for _, other in grp[grp["subset"] != bal].iterrows():
            row = {
                "scenario": scenario,
                "method": method,
                "evaluation": evaluation,
                "seed": seed,
                "subset": other["subset"],
                "level": other["level"],
            }
            for m in GAP_METRICS:
                a, r = gap(float(ref.iloc[0][m]), float(other[m]))
                row[f"{m}_gap"], row[f"{m}_rel_gap"] = a, r
            run_rows.append(row)
    gap_runs = pd.DataFrame(run_rows)
    rows = []
    if not gap_runs.empty:
        for key, grp in gap_runs.groupby(
            ["scenario", "method", "evaluation", "subset"], sort=False
        ):
            row = dict(zip(["scenario", "method", "evaluation", "subset"], key, strict=True))
            row["level"], row["seeds"] = grp["level"].iloc[0], len(grp)
            for m in GAP_METRICS:
                for kind in ("gap", "rel_gap"):
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
    for name in ("results", "per_class", "aggregate", "gaps", "gap_runs"):
        df: pd.DataFrame = getattr(tables, name)
        with atomic_path(directory / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
        with atomic_path(directory / f"{name}.parquet") as tmp:
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
    return StudyTables(
        *(
            _read_csv(directory / f"{n}.csv")
            for n in ("results", "per_class", "aggregate", "gaps", "gap_runs")
        )
    )


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()

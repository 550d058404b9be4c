"""The random-init floor of every row and the balanced-vs-imbalanced gaps: pure functions of
the results table, so the report can rebuild them from `results.csv` alone (a run written
before a change of these rules is reported by today's rules, not by its stale gap table)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluation.metrics import gap, seed_summary
from .floor import below_floor_margin

GAP_METRICS = ("top1", "balanced_accuracy", "head", "medium", "tail")
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

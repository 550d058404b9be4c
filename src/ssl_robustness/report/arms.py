"""Which subsets and rows the report compares: the main imbalanced arm, its balanced twin."""

from __future__ import annotations

from typing import Any

import pandas as pd

from . import verdict as V
from .rundir import RunDir


def comparison_rows(df: pd.DataFrame, evaluation: str, comparison: str) -> pd.DataFrame:
    """The rows of one evaluation and gap kind (tables without a `comparison` column: all)."""
    out = df[df["evaluation"] == evaluation]
    return out[out["comparison"] == comparison] if "comparison" in out else out


def subset_counts(d: dict[str, Any]) -> list[int]:
    """A stats.json entry's images per class (`counts` or, older runs, `per_class`)."""
    for key in ("counts", "per_class"):
        if isinstance(d.get(key), list):
            return [int(x) for x in d[key]]
    return []


def main_subset(run: RunDir) -> str | None:
    """The main imbalanced subset D(n,r): the one the tiers come from."""
    main = run.stats.get("tiers", {}).get("from_subset")
    if main:
        return str(main)
    names = [n for n, s in run.stats.get("subsets", {}).items() if not s.get("balanced")]
    return names[0] if names else None


def balanced_twin(run: RunDir, subset: str) -> str | None:
    """The balanced subset of the same size n as `subset`."""
    subsets = run.stats.get("subsets", {})
    n = subsets.get(subset, {}).get("n")
    balanced = [k for k, s in subsets.items() if s.get("balanced")]
    same = [k for k in balanced if n is None or subsets[k].get("n") == n]
    if same or balanced:
        return (same or balanced)[0]
    res = run.results
    if "balanced" in res:
        names = res.loc[V.truthy(res, "balanced"), "subset"].dropna().unique()
        return str(names[0]) if len(names) else None
    return None


def per_class_rows(
    run: RunDir, ev: str, comparison: str
) -> tuple[pd.DataFrame, str, str, set[str]] | str:
    """The headline evaluation's per-class rows without collapsed or failed representations,
    the main imbalanced subset and its balanced twin; or why there are none."""
    pc, main = run.tables["per_class"], main_subset(run)
    twin = balanced_twin(run, main) if main else None
    if pc.empty or main is None or twin is None:
        return "no per-class table or no balanced twin subset."
    bad = set(V.left_out_representations(run.results)["representation"])
    pc = pc[~pc["representation"].isin(bad)] if "representation" in pc else pc
    pc = pc[pc["evaluation"] == ev]
    if "comparison" in pc:
        pc = pc[pc["comparison"] == comparison]
    arms = set(pc["subset"])
    if twin not in arms or main not in arms:
        return f"no method has both arms ({twin}, {main}) on {ev}."
    return pc, main, twin, bad

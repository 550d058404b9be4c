"""The report's per-class table: which classes pay for the imbalance, by name.

One row per class: its group, its training images in each arm (D(n,1) and D(n,r)), and per
method its accuracy in each arm and the gap between them, in points, each the mean over the
seeds where both arms have a result (the same pairing as the "which classes pay" chart)."""

from __future__ import annotations

import numpy as np
import pandas as pd

KEYS = ["scenario", "method", "seed", "class"]


def method_labels(pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """A column prefix per (scenario, method): the method's name, with its scenario only when
    two scenarios share a method name."""
    names = [m for _, m in pairs]
    return {(s, m): m if names.count(m) == 1 else f"{m} ({s})" for s, m in pairs}


def class_table(
    per_class: pd.DataFrame,
    main: str,
    twin: str,
    twin_counts: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Per class (rows ordered by D(n,r) count, largest first): group, counts per arm, and per
    method accuracy in each arm and the gap, in percent. `per_class` holds one evaluation's
    rows; `twin_counts` (class -> count) stands in for tables without `arm_count`."""
    bal = per_class[per_class["subset"] == twin].set_index(KEYS)
    imb = per_class[per_class["subset"] == main].set_index(KEYS)
    both = imb[["accuracy", "train_count", "group"]].join(
        bal["accuracy"].rename("balanced_accuracy"), how="inner"
    )
    if both.empty:
        return pd.DataFrame()
    both = both.reset_index()
    classes = list(dict.fromkeys(both["class"]))
    out = pd.DataFrame({"class": classes})
    # a class's group can differ across seeds (class_order_per_seed): say so, not seed 0's
    groups = both.groupby("class")["group"].agg(
        lambda g: g.iloc[0] if g.nunique() == 1 else "varies"
    )
    out["group"] = groups.loc[classes].to_numpy()
    out[f"n in {twin}"] = _count(_twin_counts(bal, classes, twin_counts))
    out[f"n in {main}"] = _count(both.groupby("class")["train_count"].mean().loc[classes])
    pairs = list(dict.fromkeys(zip(both["scenario"], both["method"], strict=True)))
    labels = method_labels(pairs)
    for scenario, method in pairs:
        m = both[(both["scenario"] == scenario) & (both["method"] == method)]
        mean = m.groupby("class")[["balanced_accuracy", "accuracy"]].mean().reindex(classes)
        label = labels[(scenario, method)]
        out[f"{label}: {twin}"] = 100 * mean["balanced_accuracy"].to_numpy()
        out[f"{label}: {main}"] = 100 * mean["accuracy"].to_numpy()
        out[f"{label}: gap"] = out[f"{label}: {twin}"] - out[f"{label}: {main}"]
    return out.sort_values(f"n in {main}", ascending=False, kind="stable").reset_index(drop=True)


def _count(values: pd.Series | np.ndarray) -> pd.Series:
    """Counts as integers where every seed drew the same number, else their mean."""
    x = pd.Series(np.asarray(values, dtype=float))
    whole = x.dropna()
    return x.astype("Int64") if np.array_equal(whole, whole.round()) else x


def _twin_counts(
    bal: pd.DataFrame, classes: list[str], fallback: dict[str, float] | None
) -> np.ndarray:
    """Each class's training images in the balanced arm: the tables' `arm_count` (mean over
    seeds) when recorded, else the data statistics'."""
    if "arm_count" in bal and bal["arm_count"].notna().any():
        return bal.groupby(level="class")["arm_count"].mean().reindex(classes).to_numpy()
    fallback = fallback or {}
    return np.array([fallback.get(c, np.nan) for c in classes], dtype=float)

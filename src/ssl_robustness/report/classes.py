"""The report's per-class table: which classes pay for the imbalance, by name.

One row per class: its frequency tier, its training images in each arm (D(n,1) and D(n,r)), and per
method its accuracy in each arm and the gap between them, in points, each the mean over the
seeds where both arms have a result (the same pairing as the "which classes pay" chart)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

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
    """Per class (rows ordered by D(n,r) count, largest first): tier, counts per arm, and per
    method accuracy in each arm (%) and the gap (points), units named in the headers.
    `per_class` holds one evaluation's rows; `twin_counts` (class -> count) stands in for
    tables without `arm_count`."""
    bal = per_class[per_class["subset"] == twin].set_index(KEYS)
    imb = per_class[per_class["subset"] == main].set_index(KEYS)
    both = imb[["accuracy", "train_count", "tier"]].join(
        bal["accuracy"].rename("balanced_accuracy"), how="inner"
    )
    if both.empty:
        return pd.DataFrame()
    both = both.reset_index()
    classes = list(dict.fromkeys(both["class"]))
    out = pd.DataFrame({"class": classes})
    # a class's tier can differ across seeds (class_order_per_seed): say so, not seed 0's
    tiers = both.groupby("class")["tier"].agg(lambda t: t.iloc[0] if t.nunique() == 1 else "varies")
    out["tier"] = tiers.loc[classes].to_numpy()
    out[f"n in {twin}"] = _count(_twin_counts(bal, classes, twin_counts))
    out[f"n in {main}"] = _count(both.groupby("class")["train_count"].mean().loc[classes])
    pairs = list(dict.fromkeys(zip(both["scenario"], both["method"], strict=True)))
    labels = method_labels(pairs)
    for scenario, method in pairs:
        m = both[(both["scenario"] == scenario) & (both["method"] == method)]
        mean = m.groupby("class")[["balanced_accuracy", "accuracy"]].mean().reindex(classes)
        label = labels[(scenario, method)]
        bal_acc, imb_acc = f"{label}: {twin} (%)", f"{label}: {main} (%)"
        out[bal_acc] = 100 * mean["balanced_accuracy"].to_numpy()
        out[imb_acc] = 100 * mean["accuracy"].to_numpy()
        out[f"{label}: gap (points)"] = out[bal_acc] - out[imb_acc]
        per_seed = (m["balanced_accuracy"] - m["accuracy"]).groupby(m["class"])
        out[f"{label}: gap ±95% (points)"] = (
            100 * per_seed.agg(_half_width).reindex(classes).to_numpy()
        )
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


def _half_width(values: pd.Series) -> float:
    """Half-width of the 95% t-interval of the mean over seeds (NaN with one seed)."""
    v = values.dropna().to_numpy(dtype=float)
    if len(v) < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def rarity_table(per_class: pd.DataFrame, main: str, twin: str) -> pd.DataFrame:
    """The gap by rarity rank: in every seed the classes are ranked by their training images in
    D(n,r) (1 = the rarest), and each method's per-class gap (points) is averaged over seeds
    rank by rank. Where the rare classes are drawn per seed, rank 1 is a different class in
    each seed, so a rising gap at low ranks is rarity, not one hard class."""
    bal = per_class[per_class["subset"] == twin].set_index(KEYS)
    imb = per_class[per_class["subset"] == main].set_index(KEYS)
    both = imb[["accuracy", "train_count"]].join(
        bal["accuracy"].rename("balanced_accuracy"), how="inner"
    )
    if both.empty:
        return pd.DataFrame()
    both = both.reset_index()
    both["gap"] = 100 * (both["balanced_accuracy"] - both["accuracy"])
    both["rank"] = (
        both.groupby(["scenario", "method", "seed"])["train_count"]
        .rank(method="first", ascending=True)
        .astype(int)
    )
    out = both.groupby("rank").agg(
        **{f"n in {main} (mean)": ("train_count", "mean"), "classes": ("class", _distinct)}
    )
    pairs = list(dict.fromkeys(zip(both["scenario"], both["method"], strict=True)))
    labels = method_labels(pairs)
    for scenario, method in pairs:
        m = both[(both["scenario"] == scenario) & (both["method"] == method)]
        label = labels[(scenario, method)]
        out[f"{label}: gap (points)"] = m.groupby("rank")["gap"].mean()
        out[f"{label}: gap ±95% (points)"] = m.groupby("rank")["gap"].agg(
            lambda g: _half_width(g / 100) * 100
        )
    return out.reset_index().rename(columns={"rank": "rarity rank (1 = rarest)"})


def _distinct(names: pd.Series) -> str:
    """The classes that held a rank over the seeds: one name, or how many."""
    unique = list(dict.fromkeys(names))
    return unique[0] if len(unique) == 1 else f"{len(unique)} classes"


def rare_classes_by_seed(data_stats: dict) -> pd.DataFrame:
    """Per seed, the classes of the tail tier (from data/stats.json)."""
    rows = [
        {
            "seed": seed,
            "tail classes": ", ".join(d.get("tiers", {}).get("members", {}).get("tail", [])),
        }
        for seed, d in (data_stats.get("seeds") or {}).items()
    ]
    return pd.DataFrame(rows, columns=["seed", "tail classes"])


def fewest_test_images(data_stats: dict) -> int | None:
    """Test images of the smallest class, from stats.json (None where it does not say)."""
    test = data_stats.get("splits", {}).get("test", {})
    counts = test.get("counts") or test.get("per_class")
    if not isinstance(counts, list) or not counts:
        return None
    return int(min(counts))


def coarseness_line(data_stats: dict, limit: int = 50) -> str | None:
    """Where a class has fewer than `limit` test images, how coarse its accuracy is."""
    fewest = fewest_test_images(data_stats)
    if fewest is None or fewest >= limit:
        return None
    return (
        f"The smallest class has {fewest} test images: one image is {100 / fewest:.1f} points "
        "of its accuracy, so per-class differences of a few points are within one or two images."
    )

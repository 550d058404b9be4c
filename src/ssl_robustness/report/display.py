"""The report's tables as a reader sees them: one unit per quantity, named in its header
(accuracy in %, an absolute gap in points, the relative gap Δ in %, counts as counts), and
tables too wide for a page split into parts that repeat their key columns, so no column hides
in a scroll box or off a printed page. The CSV tables under tables/ keep their fractions."""

from __future__ import annotations

import re

import pandas as pd

from .plots import METRIC_LABELS

GAP_KEYS = ["scenario", "method", "evaluation", "comparison", "subset", "seeds"]
AGGREGATE_KEYS = ["scenario", "method", "subset", "evaluation", "comparison", "seeds"]
MEASURE_WORDS = {"rel_gap": "Δ", "learned_rel_gap": "Δ_learned"}
GROUPS_PER_PART = 3  # metrics per part of the accuracy table
METHODS_PER_PART = 2  # methods per part of the per-class table (4 columns each)


def _words(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def gap_parts(gaps: pd.DataFrame, metric: str) -> list[pd.DataFrame]:
    """The gap table, one part per measured metric (the verdict's, then tail): the absolute gap
    in points and Δ in %, each with the half-width of its 95% t-interval over seeds."""
    if gaps.empty:
        return []
    keys = [c for c in GAP_KEYS if c in gaps]
    parts = []
    for m in dict.fromkeys([metric, "tail"]):
        if f"{m}_gap_mean" not in gaps:
            continue
        w = _words(m)
        part = gaps[keys].copy()
        part[f"{w} gap (points)"] = 100 * gaps[f"{m}_gap_mean"]
        part[f"{w} gap ±95% (points)"] = 100 * gaps.get(f"{m}_gap_ci95", float("nan"))
        part[f"{w} Δ (%)"] = 100 * gaps[f"{m}_rel_gap_mean"]
        part[f"{w} Δ ±95% (%)"] = 100 * gaps.get(f"{m}_rel_gap_ci95", float("nan"))
        parts.append(part)
    return parts


def aggregate_parts(aggregate: pd.DataFrame, metric: str) -> list[pd.DataFrame]:
    """Accuracy (%) per arm, mean and the half-width of its 95% t-interval over seeds, in
    parts of GROUPS_PER_PART metrics; an undertrained count only where a seed was flagged."""
    if aggregate.empty:
        return []
    keys = [c for c in AGGREGATE_KEYS if c in aggregate]
    flags = pd.to_numeric(aggregate.get("undertrained_seeds", pd.Series()), errors="coerce")
    if flags.fillna(0).any():
        keys.append("undertrained_seeds")
    metrics = [
        m
        for m in dict.fromkeys([metric, "top1", "balanced_accuracy", "head", "medium", "tail"])
        if f"{m}_mean" in aggregate
    ]
    parts = []
    for i in range(0, len(metrics), GROUPS_PER_PART):
        part = aggregate[keys].copy()
        for m in metrics[i : i + GROUPS_PER_PART]:
            part[f"{_words(m)} (%)"] = 100 * aggregate[f"{m}_mean"]
            part[f"{_words(m)} ±95% (%)"] = 100 * aggregate.get(f"{m}_ci95", float("nan"))
        parts.append(part)
    return parts


def tests_table(tests: pd.DataFrame) -> pd.DataFrame:
    """Every paired test as the report shows it: d and its interval in points of the measure
    (Δ, a percentage, so points are percentage points), the p-values, the words."""
    out = tests[["evaluation", "comparison", "subset"]].copy()
    out["measure"] = tests["measure"].map(lambda m: MEASURE_WORDS.get(m, m))
    out["SSL method"], out["SL variant"] = tests["ssl_method"], tests["sl_method"]
    out["family (tests)"] = [
        f"{f} ({int(n)})" for f, n in zip(tests["family"], tests["family_size"], strict=True)
    ]
    out["seeds"] = tests["seeds"]
    out["d (points)"] = 100 * tests["d_mean"]
    out["95% CI of d (points)"] = [
        "" if pd.isna(lo) else f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"
        for lo, hi in zip(tests["ci_low"], tests["ci_high"], strict=True)
    ]
    out["p"], out["p adjusted"], out["words"] = tests["p"], tests["p_adjusted"], tests["words"]
    return out


def class_parts(table: pd.DataFrame, keep: int = 4) -> list[pd.DataFrame]:
    """The per-class table in parts of METHODS_PER_PART methods, each repeating the first
    `keep` columns (class, tier, counts); a method's columns share the prefix 'name: '."""
    if table.empty:
        return []
    head, rest = list(table.columns[:keep]), list(table.columns[keep:])
    methods = list(dict.fromkeys(c.rsplit(": ", 1)[0] for c in rest))
    parts = []
    for i in range(0, len(methods), METHODS_PER_PART):
        chosen = set(methods[i : i + METHODS_PER_PART])
        parts.append(table[head + [c for c in rest if c.rsplit(": ", 1)[0] in chosen]])
    return parts or [table]


# formats per column, by the unit its header names (HTML and Markdown alike)
def column_format(column: str) -> str:
    if column in ("p", "p adjusted"):
        return "{:.3g}"
    if (
        "(points)" in column
        or "(%)" in column
        or column.startswith("n in ")
        or column in ("minutes", "share %")
    ):
        return "{:.1f}"
    return "{:.3f}"


ONE_SEED, NO_SPREAD = "1 seed", "no spread"


def interval_cell(half: float, seeds: float | None, fmt: str) -> str:
    """An interval's half-width as a reader should read it: '1 seed' where one seed gives no
    interval (not '± 0.0', not a blank), 'no spread' where every seed gave the same value (a
    real 0, not a precise one), else the number. `seeds` None: the table has no seeds column,
    and a missing half-width is one seed's (the per-class tables)."""
    if seeds is not None and not pd.isna(seeds) and seeds < 2:
        return ONE_SEED
    if pd.isna(half):
        return ONE_SEED if seeds is None else ""
    if half == 0:
        return NO_SPREAD
    return fmt.format(half)


def formatted(df: pd.DataFrame) -> pd.DataFrame:
    """Every float cell as text in its column's format (empty where missing), for HTML and
    Markdown alike; whole numbers stay whole; interval columns (±) per `interval_cell`."""
    out = df.copy()
    seeds = pd.to_numeric(out["seeds"], errors="coerce") if "seeds" in out else None
    for col in out.columns:
        x = out[col]
        if pd.api.types.is_float_dtype(x):
            fmt = column_format(str(col))
            if "±" in str(col):
                out[col] = [
                    interval_cell(v, None if seeds is None else seeds.iloc[i], fmt)
                    for i, v in enumerate(x)
                ]
            else:
                out[col] = [("" if pd.isna(v) else fmt.format(v)) for v in x]
    return out


def breakable_headers(table_html: str) -> str:
    """A line-break opportunity after each '_' in header cells (method names such as
    supervised-balanced_softmax), so a header wraps at a word part, not mid-letter."""
    return re.sub(
        r"<th>([^<]*)</th>",
        lambda m: "<th>" + m.group(1).replace("_", "_<wbr>") + "</th>",
        table_html,
    )

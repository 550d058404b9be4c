"""The report's sentences on the data (data/stats.json) and on each method's gap."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from . import verdict as V
from .arms import comparison_rows, subset_counts
from .plots import METRIC_LABELS


def gap_sentences(gaps: pd.DataFrame, headline: tuple[str, str] | None, metric: str) -> list[str]:
    """How much each method loses under imbalance, in the headline evaluation and gap kind."""
    if headline is None:
        return ["No balanced-vs-imbalanced comparison was run (no trained method finished)."]
    g = comparison_rows(gaps, *headline)
    words = METRIC_LABELS.get(metric, metric)
    lines = []
    for r in g.itertuples():
        d = r._asdict()
        mean, ci = d[f"{metric}_gap_mean"], d.get(f"{metric}_gap_ci95", math.nan)
        rel, rel_ci = d[f"{metric}_rel_gap_mean"], d.get(f"{metric}_rel_gap_ci95", math.nan)
        verb = "loses" if mean >= 0 else "gains"
        seeds = int(d.get("seeds", 1))
        if seeds < 2 or _nan(ci):
            spread = ", one seed: no interval"
        elif ci == 0:
            spread = f", no spread over {seeds} seeds"
        else:
            spread = f", 95% t-interval ± {100 * ci:.1f} points over {seeds} seeds"
        lines.append(
            f"{r.method} ({r.scenario}) {verb} {100 * abs(mean):.1f} points {words} "
            f"from balanced to {r.subset}{spread} (Δ = {_pct(rel)}"
            + ("" if _nan(rel_ci) or seeds < 2 or rel_ci == 0 else f" ± {_pct(rel_ci)}")
            + ")."
        )
    return lines


def data_lines(stats: dict[str, Any]) -> list[str]:
    """The data section's sentences from data/stats.json (older runs: fewer keys)."""
    lines = []
    splits = stats.get("splits", {})
    sizes = ", ".join(f"{s} {_total(d)}" for s, d in splits.items())
    lines.append(f"{len(stats.get('classes', []))} classes; {sizes or 'split sizes not recorded'}.")
    test = subset_counts(splits.get("test", {}))
    if not V.test_is_balanced(stats):
        span = f" ({min(test)}..{max(test)} images per class)" if test else ""
        lines.append(
            f"The test split is NOT balanced{span}: balanced accuracy leads, and the verdict "
            "uses it."
        )
    elif test:
        lines.append(f"The test split is balanced ({test[0]} images per class).")
    for name, s in stats.get("subsets", {}).items():
        c = subset_counts(s)
        span = f", per class {min(c)}..{max(c)} (ratio {min(c) / max(c):.3f})" if c else ""
        kind = "balanced" if s.get("balanced") else f"level {s.get('level')}"
        lines.append(f"subset {name} ({kind}): n = {s.get('n', sum(c))}{span}.")
    tiers = stats.get("tiers", {})
    if tiers:
        members = {t: len(v) for t, v in tiers.get("members", {}).items()}
        lines.append(
            f"frequency tiers head/medium/tail by the '{tiers.get('rule')}' rule from "
            f"{tiers.get('from_subset')}'s counts: {members}."
        )
    lines.append(_probe_line(stats.get("probe_balanced", {})))
    bad = stats.get("bad_images", {})
    count = bad.get("count", 0) if isinstance(bad, dict) else len(bad)
    if count:
        lines.append(f"{count} unreadable images were left out.")
    from ..data.subsets.tradeoff import natural_data_lines

    # the trade-off is a table of its own (tradeoff_table), not lines of a fixed-width one
    # shown as bullets
    return lines + natural_data_lines({k: v for k, v in stats.items() if k != "tradeoff"})


TRADEOFF_CAPTION = (
    "Matched n by choice: n is the largest every imbalance level allows, per arm; share of "
    "this config's train pool."
)


def tradeoff_table(stats: dict[str, Any]) -> pd.DataFrame:
    """The data-use trade-off (stats.json's `tradeoff`) as a table: one row per choice (this
    config, or a class filter), its n, classes and share of the pool in %."""
    rows = [r for r in stats.get("tradeoff") or [] if isinstance(r, dict)]
    if len(rows) < 2:  # one choice: nothing to trade
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "choice": [str(r.get("choice", "")) for r in rows],
            "n": [int(r.get("n", 0)) for r in rows],
            "classes": [int(r.get("classes", 0)) for r in rows],
            "share of the pool (%)": [100 * float(r.get("share_of_pool", math.nan)) for r in rows],
        }
    )


def _probe_line(probe: dict[str, Any]) -> str:
    protocol = probe.get("protocol")
    how = {
        "disjoint": "disjoint from every pretraining subset",
        "pool": "drawn from the same pool as the subsets, so it can overlap them",
    }.get(protocol, "protocol not recorded (an older run)")
    per_class = probe.get("per_class")
    if isinstance(per_class, list):
        per_class = f"{min(per_class)}..{max(per_class)}" if per_class else "?"
    return (
        f"balanced labelled set for probes and kNN: {probe.get('n', '?')} images, "
        f"{per_class} per class, {how}."
    )


def probe_overlap_table(stats: dict[str, Any]) -> pd.DataFrame:
    """Per seed and subset: how many probe images are also in the subset (disjoint: 0)."""
    rows = [
        {
            "seed": seed,
            "subset": subset,
            "overlap_images": int(sum(counts)),
            "classes_overlapping": int(sum(1 for c in counts if c)),
        }
        for seed, by_subset in (stats.get("probe_overlap") or {}).items()
        for subset, counts in by_subset.items()
    ]
    return pd.DataFrame(rows, columns=["seed", "subset", "overlap_images", "classes_overlapping"])


def _total(d: dict[str, Any]) -> int:
    return int(d.get("n", sum(subset_counts(d))))


def _pct(x: float) -> str:
    return "n/a" if _nan(x) else f"{100 * x:.1f}%"


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))

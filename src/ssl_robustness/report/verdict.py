"""The study's verdict: does SSL lose less than SL under imbalance, as a statistical statement.

For each evaluation and gap kind (`comparison`), each SSL method is compared with every SL
variant on paired per-seed differences of the relative gap, d_s = Δ_SSL(s) − Δ_SL(s), over
the seeds both have; the words come from the 95% t-interval of the mean of d_s. Two
overlapping per-method intervals are not a test, so no such logic lives here.

Pure functions on the tables (`gap_runs`, `results`): no files, no study objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..names import SL, SSL_SCENARIOS

HEADLINE = ("linear-balanced", "pretraining")  # Liu et al.'s protocol
COMPARISON_ORDER = ("pretraining", "end-to-end", "fixed-representation")

LESS, MORE, SAME = "loses less", "loses more", "no detectable difference"
ONE_SEED, NO_SEED = "one seed, no interval", "no seed to compare"


@dataclass(frozen=True)
class Paired:
    """One SSL method against one SL variant: the paired per-seed difference of Δ."""

    ssl_scenario: str
    ssl_method: str
    sl_method: str
    seeds: tuple[int, ...]
    ssl_rel_gap: float  # mean Δ_SSL over the paired seeds
    sl_rel_gap: float  # mean Δ_SL over the paired seeds
    mean: float  # mean of d_s
    low: float  # 95% t-interval of the mean; NaN with fewer than two pairs
    high: float
    words: str


@dataclass(frozen=True)
class Verdict:
    """Every SSL-vs-SL comparison of one evaluation, gap kind and imbalanced arm."""

    evaluation: str
    comparison: str
    subset: str
    metric: str
    best_sl: str | None  # SL variant with the smallest mean Δ (None: no SL variant)
    sl_rel_gaps: dict[str, float]  # mean Δ of each SL variant over its usable seeds
    pairs: tuple[Paired, ...]
    left_out: tuple[str, ...] = field(default=())  # collapsed / failed representations
    # each SSL method's own Δ over its usable seeds: "method (scenario)" -> (seeds, mean, 95% CI)
    ssl_rel_gaps: dict[str, tuple[int, float, float, float]] = field(default_factory=dict)
    study_has_sl: bool = True  # False: the study trained no SL arm at all

    @property
    def headline(self) -> bool:
        return (self.evaluation, self.comparison) == HEADLINE


def verdict_metric(stats_json: dict[str, Any]) -> tuple[str, str]:
    """`top1` on a balanced test split, else `balanced_accuracy`; and the reason in words."""
    if test_is_balanced(stats_json):
        return "top1", "top-1 accuracy (the test split is balanced)"
    return "balanced_accuracy", (
        "balanced accuracy (mean per-class recall), because the test split is not balanced"
    )


def test_is_balanced(stats_json: dict[str, Any]) -> bool:
    """`test_balanced` from stats.json; older runs: equal per-class test counts; else True."""
    flag = stats_json.get("test_balanced")
    if flag is not None:
        return bool(flag)
    test = stats_json.get("splits", {}).get("test", {})
    counts = test.get("counts", test.get("per_class"))
    if isinstance(counts, list) and counts:
        return min(counts) == max(counts)
    return True


def t_interval(values: np.ndarray | list[float]) -> tuple[float, float, float]:
    """Mean and the 95% t-interval of the mean; (mean, NaN, NaN) with fewer than two values."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    mean = float(v.mean())
    if len(v) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, mean - half, mean + half


def interval_words(n: int, low: float, high: float) -> str:
    """Words for d = Δ_SSL − Δ_SL: an interval below 0 means SSL loses less."""
    if n == 0:
        return NO_SEED
    if n == 1:
        return ONE_SEED
    if high < 0:
        return LESS
    if low > 0:
        return MORE
    return SAME


def left_out_representations(results: pd.DataFrame) -> pd.DataFrame:
    """Rows of representations that collapsed or failed, with a `why` column."""
    if results.empty or "representation" not in results:
        return pd.DataFrame(columns=["representation", "scenario", "why"])
    collapsed = truthy(results, "collapsed")
    failed = results.get("status", pd.Series("ok", index=results.index)).astype(str) == "failed"
    bad = results[collapsed | failed].copy()
    bad["why"] = np.where(failed[collapsed | failed], "failed", "collapsed")
    return bad


def verdicts(gap_runs: pd.DataFrame, results: pd.DataFrame, metric: str = "top1") -> list[Verdict]:
    """One Verdict per (evaluation, comparison, imbalanced subset) where an SSL method has
    gaps; the headline (pretraining on linear-balanced) first."""
    col = f"{metric}_rel_gap"
    if gap_runs.empty or col not in gap_runs:
        return []
    runs = gap_runs if "comparison" in gap_runs else gap_runs.assign(comparison="pretraining")
    runs = runs[runs["comparison"] != "cross-scenario"]
    bad = left_out_representations(results)
    usable = runs[~_touches(runs, bad)].dropna(subset=[col])
    sl_all = _sl_methods(results)
    out = [
        _verdict(str(ev), str(comparison), str(subset), metric, usable, grp, bad, sl_all)
        for (ev, comparison, subset), grp in runs.groupby(
            ["evaluation", "comparison", "subset"], sort=False
        )
        if grp["scenario"].isin(SSL_SCENARIOS).any()
    ]
    return sorted(out, key=_order)


def _verdict(
    evaluation: str,
    comparison: str,
    subset: str,
    metric: str,
    usable: pd.DataFrame,
    everything: pd.DataFrame,
    bad: pd.DataFrame,
    sl_all: list[str],
) -> Verdict:
    col = f"{metric}_rel_gap"
    usable = usable[
        (usable["evaluation"] == evaluation)
        & (usable["comparison"] == comparison)
        & (usable["subset"] == subset)
    ]
    sl_here = list(everything.loc[everything["scenario"] == SL, "method"])
    # every SL variant of the study, once this gap kind has any SL gap at all
    sl_methods = list(dict.fromkeys(sl_here + sl_all)) if sl_here else []
    per_seed = {
        (scenario, method): dict(zip(g["seed"].astype(int), g[col].astype(float), strict=True))
        for (scenario, method), g in usable.groupby(["scenario", "method"], sort=False)
    }
    sl_gaps = {
        m: float(np.mean(list(per_seed[(SL, m)].values())))
        for m in sl_methods
        if per_seed.get((SL, m))
    }
    best = min(sl_gaps, key=sl_gaps.__getitem__) if sl_gaps else None
    pairs, own = [], {}
    ssl = everything[everything["scenario"].isin(SSL_SCENARIOS)]
    for scenario, method in dict.fromkeys(zip(ssl["scenario"], ssl["method"], strict=True)):
        mine = per_seed.get((scenario, method), {})
        if mine:
            own[f"{method} ({scenario})"] = (len(mine), *t_interval(list(mine.values())))
        for sl in sl_methods:
            pairs.append(_paired(scenario, method, sl, mine, per_seed.get((SL, sl), {})))
    names = _named(bad, everything, evaluation, bool(sl_methods))
    return Verdict(
        evaluation,
        comparison,
        subset,
        metric,
        best,
        sl_gaps,
        tuple(pairs),
        names,
        own,
        bool(sl_all),
    )


def _paired(
    scenario: str, method: str, sl: str, ssl_runs: dict[int, float], sl_runs: dict[int, float]
) -> Paired:
    seeds = tuple(sorted(set(ssl_runs) & set(sl_runs)))
    a = np.array([ssl_runs[s] for s in seeds])
    b = np.array([sl_runs[s] for s in seeds])
    mean, low, high = t_interval(a - b)
    return Paired(
        scenario,
        method,
        sl,
        seeds,
        float(a.mean()) if seeds else math.nan,
        float(b.mean()) if seeds else math.nan,
        mean,
        low,
        high,
        interval_words(len(seeds), low, high),
    )


def _touches(runs: pd.DataFrame, bad: pd.DataFrame) -> pd.Series:
    """Gap rows one of whose two arms is a collapsed or failed representation. A bad row
    without method or seed cannot be placed; it produced no gap, so pairing drops its seed."""
    hit = pd.Series(False, index=runs.index)
    for _, b in bad.iterrows():
        if any(_missing(b.get(k)) for k in ("scenario", "method", "seed")):
            continue
        m = (
            (runs["scenario"] == b["scenario"])
            & (runs["method"] == b["method"])
            & (runs["seed"].astype(float) == float(b["seed"]))
        )
        if not _missing(b.get("evaluation")):
            m &= runs["evaluation"] == b["evaluation"]
        sub = b.get("subset")
        if not (_missing(sub) or sub == "-" or _truthy_one(b.get("balanced"))):
            m &= runs["subset"] == sub  # an imbalanced arm spoils only its own gaps
        hit |= m
    return hit


def _sl_methods(results: pd.DataFrame) -> list[str]:
    if results.empty or "method" not in results:
        return []
    return [str(m) for m in results.loc[results["scenario"] == SL, "method"].dropna()]


def _named(
    bad: pd.DataFrame, group: pd.DataFrame, evaluation: str, with_sl: bool
) -> tuple[str, ...]:
    """Names of the left-out representations of the scenarios compared here."""
    scenarios = set(group.loc[group["scenario"].isin(SSL_SCENARIOS), "scenario"])
    if with_sl:
        scenarios.add(SL)
    names = [
        f"{b['representation']} ({b['why']})"
        for _, b in bad.iterrows()
        if b.get("scenario") in scenarios
        and (_missing(b.get("evaluation")) or b.get("evaluation") == evaluation)
    ]
    return tuple(dict.fromkeys(names))


def _order(v: Verdict) -> tuple[int, int, str, str]:
    kind = COMPARISON_ORDER.index(v.comparison) if v.comparison in COMPARISON_ORDER else 9
    return (0 if v.headline else 1, kind, v.evaluation, v.subset)


def truthy(df: pd.DataFrame, column: str) -> pd.Series:
    """A boolean column read back from CSV may hold True/False, 'True'/'False' or NaN."""
    if column not in df:
        return pd.Series(False, index=df.index)
    return df[column].map(_truthy_one).astype(bool)


def _truthy_one(x: Any) -> bool:
    if isinstance(x, str):
        return x.strip().lower() in ("true", "1", "yes")
    return bool(x) if not _missing(x) else False


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


# -- words ---------------------------------------------------------------------------------

METRIC_WORDS = {"top1": "top-1", "balanced_accuracy": "balanced accuracy"}


def _pct(x: float) -> str:
    return "n/a" if _missing(x) else f"{100 * x:.1f}%"


def _pp(x: float) -> str:
    return "n/a" if _missing(x) else f"{100 * x:+.1f}"


def paired_sentence(p: Paired) -> str:
    """e.g. 'simclr (SSL-in-domain) loses less than supervised: d = −4.1 points of Δ, 95% CI
    [−7.0, −1.2], 3 seeds (Δ 3.0% vs 7.1%).'"""
    who = f"{p.ssl_method} ({p.ssl_scenario})"
    if not p.seeds:
        return f"{who} vs {p.sl_method}: {NO_SEED} (no seed where both have a usable gap)."
    gaps = f"Δ {_pct(p.ssl_rel_gap)} vs {_pct(p.sl_rel_gap)}"
    if len(p.seeds) == 1:
        return (
            f"{who} vs {p.sl_method}: {ONE_SEED} (seed {p.seeds[0]}: d = {_pp(p.mean)} points "
            f"of Δ; {gaps})."
        )
    verb = {LESS: "loses less than", MORE: "loses more than"}.get(p.words)
    head = f"{who} {verb or 'shows ' + SAME + ' from'} {p.sl_method}"
    return (
        f"{head}: paired difference d = {_pp(p.mean)} points of Δ, 95% CI "
        f"[{_pp(p.low)}, {_pp(p.high)}] over {len(p.seeds)} seeds ({gaps})."
    )


def _own_gap(who: str, seeds: int, mean: float, low: float, high: float) -> str:
    if seeds == 1:
        return f"{who} {_pct(mean)} ({ONE_SEED})"
    return f"{who} {_pct(mean)}, 95% CI [{_pct(low)}, {_pct(high)}] over {seeds} seeds"


def verdict_sentences(v: Verdict) -> list[str]:
    """Plain sentences for one Verdict: what is compared, the best SL variant, each pair,
    and what was left out."""
    lead = (
        f"{v.evaluation}, {v.comparison} gap (balanced vs {v.subset}), relative gap Δ in "
        f"{METRIC_WORDS.get(v.metric, v.metric)}"
    )
    if v.best_sl is None:
        why = (
            "no SL variant has a usable gap here"
            if v.study_has_sl
            else "this study trained no SL arm"
        )
        own = "; ".join(_own_gap(who, *g) for who, g in v.ssl_rel_gaps.items())
        best = f"{why}, so it cannot say whether SSL loses less than SL. " + (
            f"Each SSL method's own Δ, to be read alone: {own}. Side-by-side intervals are not "
            "a test of a difference between these methods; pair them by seed for that."
            if own
            else "No SSL method has a usable gap either."
        )
    else:
        others = ", ".join(f"{m} {_pct(g)}" for m, g in v.sl_rel_gaps.items() if m != v.best_sl)
        best = f"best SL variant: {v.best_sl} (Δ {_pct(v.sl_rel_gaps[v.best_sl])})" + (
            f"; others: {others}." if others else "."
        )
    lines = [f"{lead}: {best}", *[paired_sentence(p) for p in v.pairs]]
    if v.left_out:
        lines.append("Left out (their seed pairs dropped): " + ", ".join(v.left_out) + ".")
    return lines


def render(vs: list[Verdict], metric_reason: str | None = None) -> list[str]:
    """All verdicts as plain sentences, the headline first."""
    if not vs:
        return ["No SSL method has a balanced-vs-imbalanced gap, so there is no verdict."]
    lines = [f"The verdict uses {metric_reason}."] if metric_reason else []
    for v in vs:
        lines += verdict_sentences(v)
    return lines


NEAR_FLOOR = 0.03  # a trained representation within 3 points of random init learned ~nothing


def near_floor(results: pd.DataFrame, margin: float = NEAR_FLOOR) -> list[str]:
    """Sentences naming every trained representation and evaluation that beats the random-init
    floor of the same seed and adaptation by less than `margin` (top-1)."""
    if "over_floor" not in results:
        return []
    over = pd.to_numeric(results["over_floor"], errors="coerce")
    rows = results[over < margin]
    return [
        f"{r.representation} on {r.evaluation}: top-1 {100 * r.top1:.1f}% vs random init "
        f"{100 * r.floor_top1:.1f}% ({100 * r.over_floor:+.1f} points): within "
        f"{100 * margin:.0f} points of the floor, it learned little"
        for r in rows.itertuples()
    ]

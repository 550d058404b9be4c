"""The study's verdict: does SSL lose less than SL under imbalance, as a statistical statement.

For each evaluation and gap kind (`comparison`), each SSL method is compared with every SL
variant on paired per-seed differences of the relative gap, d_s = Δ_SSL(s) − Δ_SL(s), over
the seeds both have (a paired t-test). A study makes many such tests, so one comparison is
declared confirmatory before it runs (`report.confirmatory`, default Liu et al.'s linear probe
on the balanced probe set, pretraining gap): its tests are one family, Holm-adjusted, with
Bonferroni-simultaneous intervals, and only its words are unqualified. Every other test is
exploratory and says so, with its unadjusted p and its p adjusted over every test made.
Δ_learned (the gap of what was learned beyond the random-init floor) is tested beside Δ as a
sensitivity check, and where the two disagree the verdict says so.

Pure functions on the tables (`gap_runs`, `results`): no files, no study objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..names import SL, SSL_SCENARIOS
from .paired import ALPHA, MIN_SEEDS_FOR_WORDS, holm, interval_from, paired_p, t_interval

HEADLINE = ("linear-balanced", "pretraining")  # Liu et al.'s protocol: the default confirmatory
COMPARISON_ORDER = ("pretraining", "end-to-end", "fixed-representation")

LESS, MORE, SAME = "loses less", "loses more", "no detectable difference"
ONE_SEED, NO_SEED = "one seed, no interval", "no seed to compare"
TOO_FEW = "too few seeds for words"
ZERO_VARIANCE = "zero variance over seeds, no test"
MEASURES = {"rel_gap": "Δ", "learned_rel_gap": "Δ_learned"}
CONFIRMATORY, SENSITIVITY, EXPLORATORY = "confirmatory", "sensitivity", "exploratory"


@dataclass(frozen=True)
class Paired:
    """One SSL method against one SL variant: the paired per-seed difference of a gap measure
    (Liu et al.'s Δ, or Δ_learned), its paired t-test, and the interval and words it gets in
    its family of tests."""

    ssl_scenario: str
    ssl_method: str
    sl_method: str
    seeds: tuple[int, ...]
    ssl_rel_gap: float  # mean of the measure for SSL over the paired seeds
    sl_rel_gap: float  # the same for SL
    mean: float  # mean of d_s
    low: float  # the interval of the mean at `level`; NaN with fewer than two pairs
    high: float
    words: str
    measure: str = "rel_gap"
    sd: float = math.nan
    p: float = math.nan  # two-sided paired t-test of mean d = 0, unadjusted
    p_adjusted: float = math.nan  # Holm within `family` (exploratory: over every test made)
    family: str = EXPLORATORY
    family_size: int = 0
    level: float = 1 - ALPHA  # confirmatory and sensitivity: Bonferroni-simultaneous
    # mean accuracy of each arm over the paired seeds: (balanced arm, imbalanced arm)
    ssl_accuracy: tuple[float, float] = (math.nan, math.nan)
    sl_accuracy: tuple[float, float] = (math.nan, math.nan)


@dataclass(frozen=True)
class Verdict:
    """Every SSL-vs-SL comparison of one evaluation, gap kind and imbalanced arm."""

    evaluation: str
    comparison: str
    subset: str
    metric: str
    best_sl: str | None  # SL variant with the smallest mean Δ (None: no SL variant)
    sl_rel_gaps: dict[str, float]  # mean Δ of each SL variant over its usable seeds
    pairs: tuple[Paired, ...]  # on Liu et al.'s Δ
    left_out: tuple[str, ...] = field(default=())  # collapsed / failed representations
    # each SSL method's own Δ over its usable seeds: "method (scenario)" -> (seeds, mean, 95% CI)
    ssl_rel_gaps: dict[str, tuple[int, float, float, float]] = field(default_factory=dict)
    study_has_sl: bool = True  # False: the study trained no SL arm at all
    learned_pairs: tuple[Paired, ...] = field(default=())  # the same pairs on Δ_learned
    confirmatory: bool = False  # the study's one confirmatory comparison
    near_floor: tuple[str, ...] = field(default=())  # left out of the family: learned ~nothing

    @property
    def headline(self) -> bool:
        return self.confirmatory


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


def interval_words(n: int, low: float, high: float) -> str:
    """Words for d = Δ_SSL − Δ_SL from its interval: below 0 means SSL loses less. Fewer than
    MIN_SEEDS_FOR_WORDS pairs or a zero-variance interval give no words."""
    if n == 0:
        return NO_SEED
    if n == 1:
        return ONE_SEED
    if n < MIN_SEEDS_FOR_WORDS:
        return TOO_FEW
    if _missing(low) or low == high:
        return ZERO_VARIANCE
    if high < 0:
        return LESS
    if low > 0:
        return MORE
    return SAME


def verdicts(
    gap_runs: pd.DataFrame,
    results: pd.DataFrame,
    metric: str = "top1",
    confirmatory: tuple[str, str] = HEADLINE,
) -> list[Verdict]:
    """One Verdict per (evaluation, comparison, imbalanced subset) where an SSL method has
    gaps, the confirmatory one first; every test's family, adjusted p, interval and words set."""
    col = f"{metric}_rel_gap"
    if gap_runs.empty or col not in gap_runs:
        return []
    runs = gap_runs if "comparison" in gap_runs else gap_runs.assign(comparison="pretraining")
    runs = runs[runs["comparison"] != "cross-scenario"]
    bad = left_out_representations(results)
    usable = runs[~_touches(runs, bad)]
    sl_all = _sl_methods(results)
    raw = [
        _verdict(
            (str(ev), str(comparison), str(subset)),
            metric,
            usable,
            grp,
            bad,
            sl_all,
            results,
            (str(ev), str(comparison)) == tuple(confirmatory),
        )
        for (ev, comparison, subset), grp in runs.groupby(
            ["evaluation", "comparison", "subset"], sort=False
        )
        if grp["scenario"].isin(SSL_SCENARIOS).any()
    ]
    return sorted(_families(raw), key=_order)


def _verdict(
    where: tuple[str, str, str],
    metric: str,
    usable: pd.DataFrame,
    everything: pd.DataFrame,
    bad: pd.DataFrame,
    sl_all: list[str],
    results: pd.DataFrame,
    confirmatory: bool,
) -> Verdict:
    evaluation, comparison, subset = where
    usable = usable[
        (usable["evaluation"] == evaluation)
        & (usable["comparison"] == comparison)
        & (usable["subset"] == subset)
    ]
    sl_here = list(everything.loc[everything["scenario"] == SL, "method"])
    # every SL variant of the study, once this gap kind has any SL gap at all
    sl_methods = list(dict.fromkeys(sl_here + sl_all)) if sl_here else []
    runs = {
        measure: _per_seed(usable, f"{metric}_{measure}")
        for measure in MEASURES
        if f"{metric}_{measure}" in usable
    }
    acc = _accuracies(usable, metric)
    delta = runs[next(iter(runs))]
    sl_gaps = {
        m: float(np.mean(list(delta[(SL, m)].values()))) for m in sl_methods if delta.get((SL, m))
    }
    best = min(sl_gaps, key=sl_gaps.__getitem__) if sl_gaps else None
    pairs: dict[str, list[Paired]] = {m: [] for m in runs}
    own = {}
    ssl = everything[everything["scenario"].isin(SSL_SCENARIOS)]
    for scenario, method in dict.fromkeys(zip(ssl["scenario"], ssl["method"], strict=True)):
        mine = delta.get((scenario, method), {})
        if mine:
            own[f"{method} ({scenario})"] = (len(mine), *t_interval(list(mine.values())))
        for sl in sl_methods:
            for measure, per_seed in runs.items():
                pairs[measure].append(
                    _paired(
                        (scenario, method, sl),
                        measure,
                        per_seed.get((scenario, method), {}),
                        per_seed.get((SL, sl), {}),
                        acc,
                    )
                )
    floor = _near_floor_methods(results, evaluation, subset, metric=metric) if confirmatory else {}
    return Verdict(
        evaluation,
        comparison,
        subset,
        metric,
        best,
        sl_gaps,
        tuple(pairs.get("rel_gap", [])),
        _named(bad, everything, evaluation, bool(sl_methods)),
        own,
        bool(sl_all),
        tuple(pairs.get("learned_rel_gap", [])),
        confirmatory,
        tuple(f"{m} ({why})" for m, why in floor.items()),
    )


def _per_seed(usable: pd.DataFrame, col: str) -> dict[tuple[str, str], dict[int, float]]:
    finite = usable.dropna(subset=[col])
    return {
        (scenario, method): dict(zip(g["seed"].astype(int), g[col].astype(float), strict=True))
        for (scenario, method), g in finite.groupby(["scenario", "method"], sort=False)
    }


def _accuracies(usable: pd.DataFrame, metric: str) -> dict[tuple[str, str, int], tuple]:
    """(scenario, method, seed) -> (balanced arm, imbalanced arm) accuracy, where recorded."""
    cols = (f"{metric}_balanced_arm", f"{metric}_imbalanced_arm")
    if not all(c in usable for c in cols):
        return {}
    return {
        (r["scenario"], r["method"], int(r["seed"])): (float(r[cols[0]]), float(r[cols[1]]))
        for _, r in usable.iterrows()
    }


def _paired(
    who: tuple[str, str, str],
    measure: str,
    ssl_runs: dict[int, float],
    sl_runs: dict[int, float],
    acc: dict[tuple[str, str, int], tuple],
) -> Paired:
    scenario, method, sl = who
    seeds = tuple(sorted(set(ssl_runs) & set(sl_runs)))
    a = np.array([ssl_runs[s] for s in seeds])
    b = np.array([sl_runs[s] for s in seeds])
    d = a - b
    mean, low, high = t_interval(d)

    def arms(scen: str, meth: str) -> tuple[float, float]:
        got = [acc[(scen, meth, s)] for s in seeds if (scen, meth, s) in acc]
        return tuple(np.mean(got, axis=0).tolist()) if got else (math.nan, math.nan)

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
        measure=measure,
        sd=float(d.std(ddof=1)) if len(d) > 1 else math.nan,
        p=paired_p(d),
        ssl_accuracy=arms(scenario, method),
        sl_accuracy=arms(SL, sl),
    )


def _families(vs: list[Verdict]) -> list[Verdict]:
    """Assign every test its family and adjust: the confirmatory comparison's Δ tests (less
    the near-floor methods) are one Holm family with Bonferroni-simultaneous intervals, its
    Δ_learned tests a sensitivity family of their own; every other test is exploratory, its
    p adjusted over every test the study made."""
    slots = [
        (i, kind, j)
        for i, v in enumerate(vs)
        for kind in ("pairs", "learned_pairs")
        for j in range(len(getattr(v, kind)))
    ]

    def family(i: int, kind: str, j: int) -> str:
        v = vs[i]
        p = getattr(v, kind)[j]
        excluded = {n.split(" (")[0] for n in v.near_floor}
        if not v.confirmatory or p.ssl_method in excluded or p.sl_method in excluded:
            return EXPLORATORY
        return CONFIRMATORY if kind == "pairs" else SENSITIVITY

    fam = {slot: family(*slot) for slot in slots}
    # every test made: two paired seeds or more; one with zero variance counts, never rejecting
    every = [slot for slot in slots if len(_test(vs, slot).seeds) >= 2]

    def ps(members: list[tuple[int, str, int]]) -> list[float]:
        return [1.0 if _missing(_test(vs, s).p) else _test(vs, s).p for s in members]

    adjusted: dict[tuple[int, str, int], tuple[float, int]] = {}
    for name in (CONFIRMATORY, SENSITIVITY):
        members = [s for s in every if fam[s] == name]
        for s, q in zip(members, holm(ps(members)), strict=True):
            adjusted[s] = (q, len(members))
    all_q = holm(ps(every))
    for s, q in zip(every, all_q, strict=True):
        if fam[s] == EXPLORATORY:
            adjusted[s] = (q, len(every))
    out = []
    for i, v in enumerate(vs):
        new = {}
        for kind in ("pairs", "learned_pairs"):
            new[kind] = tuple(
                _finish(p, fam[(i, kind, j)], *adjusted.get((i, kind, j), (math.nan, 0)))
                for j, p in enumerate(getattr(v, kind))
            )
        out.append(replace(v, **new))
    return out


def _test(vs: list[Verdict], slot: tuple[int, str, int]) -> Paired:
    i, kind, j = slot
    return getattr(vs[i], kind)[j]


def _finish(p: Paired, family: str, p_adjusted: float, size: int) -> Paired:
    """The interval and words of a test in its family: exploratory tests keep their unadjusted
    95% interval and words (labelled exploratory where shown); confirmatory and sensitivity
    tests get an interval simultaneous over their family (Bonferroni) and words from Holm's
    adjusted p. With Holm a test past the first may be significant while its Bonferroni
    interval just touches 0; the words follow Holm."""
    level = 1 - ALPHA if family == EXPLORATORY else 1 - ALPHA / max(size, 1)
    low, high = p.low, p.high
    if len(p.seeds) >= 2 and not _missing(p.sd):
        _, low, high = interval_from(p.mean, p.sd, len(p.seeds), level)
    words = p.words
    if words in (LESS, MORE, SAME):
        decide = p.p if family == EXPLORATORY else p_adjusted
        if _missing(p.p):
            words = ZERO_VARIANCE
        else:
            words = (LESS if p.mean < 0 else MORE) if decide < ALPHA else SAME
    return replace(
        p,
        low=low,
        high=high,
        words=words,
        p_adjusted=p_adjusted,
        family=family,
        family_size=size,
        level=level,
    )


def over_floor(results: pd.DataFrame, metric: str = "top1") -> pd.Series:
    """Each row's margin over the random-init floor in the verdict's own metric (the
    `over_floor` column is top-1's; balanced accuracy has its own floor column)."""
    floor = f"floor_{metric}"
    if metric != "top1" and metric in results and floor in results:
        return pd.to_numeric(results[metric], errors="coerce") - pd.to_numeric(
            results[floor], errors="coerce"
        )
    if "over_floor" not in results:
        return pd.Series(np.nan, index=results.index)
    return pd.to_numeric(results["over_floor"], errors="coerce")


def _near_floor_methods(
    results: pd.DataFrame,
    evaluation: str,
    subset: str,
    margin: float | None = None,
    metric: str = "top1",
) -> dict[str, str]:
    """Methods whose balanced or imbalanced arm beats the random-init floor of this evaluation
    by less than `margin` on average over seeds (in the verdict's metric): they learned
    ~nothing, so their Δ says nothing about robustness and they stay out of the confirmatory
    family."""
    margin = NEAR_FLOOR if margin is None else margin
    if "evaluation" not in results:
        return {}
    margins = over_floor(results, metric)
    keep = (results["evaluation"] == evaluation) & results["subset"].isin(["balanced", subset])
    rows, margins = results[keep], margins[keep]
    out = {}
    for method, g in rows.groupby("method", sort=False):
        over = margins[g.index].groupby(g["subset"]).mean()
        if over.notna().any() and float(over.min()) < margin:
            out[str(method)] = (
                f"{100 * float(over.min()):+.1f} points over the random-init floor in its "
                f"{over.idxmin()} arm"
            )
    return out


def left_out_representations(results: pd.DataFrame) -> pd.DataFrame:
    """Rows of representations that collapsed or failed, with a `why` column."""
    if results.empty or "representation" not in results:
        return pd.DataFrame(columns=["representation", "scenario", "why"])
    collapsed = truthy(results, "collapsed")
    failed = results.get("status", pd.Series("ok", index=results.index)).astype(str) == "failed"
    bad = results[collapsed | failed].copy()
    bad["why"] = np.where(failed[collapsed | failed], "failed", "collapsed")
    return bad


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
    return (0 if v.confirmatory else 1, kind, v.evaluation, v.subset)


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


def _acc(x: tuple[float, float]) -> str:
    return f"{_pct(x[0])} → {_pct(x[1])}"


def _p(x: float) -> str:
    return "n/a" if _missing(x) else (f"{x:.2g}" if x < 0.001 else f"{x:.3f}")


def paired_sentence(p: Paired, metric: str = "top1") -> str:
    """e.g. 'simclr (SSL-in-domain) loses less than supervised: d = −4.1 points of Δ,
    family-wise 95% CI [−7.0, −1.2] (Bonferroni over 2 tests), Holm p = 0.021 (unadjusted
    0.011), 5 seeds; Δ 3.0% vs 7.1%; top-1 balanced → imbalanced arm 41.2% → 40.8% vs
    supervised's 53.9% → 48.1%.'"""
    who = f"{p.ssl_method} ({p.ssl_scenario})"
    sym = MEASURES.get(p.measure, p.measure)
    if not p.seeds:
        return f"{who} vs {p.sl_method}: {NO_SEED} (no seed where both have a usable {sym})."
    gaps = f"{sym} {_pct(p.ssl_rel_gap)} vs {_pct(p.sl_rel_gap)}"
    if not _missing(p.ssl_accuracy[0]):
        gaps += (
            f"; {METRIC_WORDS.get(metric, metric)} balanced → imbalanced arm "
            f"{_acc(p.ssl_accuracy)} vs {p.sl_method}'s {_acc(p.sl_accuracy)}"
        )
    if len(p.seeds) == 1:
        return (
            f"{who} vs {p.sl_method}: {ONE_SEED} (seed {p.seeds[0]}: d = {_pp(p.mean)} points "
            f"of {sym}; {gaps})."
        )
    d = f"d = {_pp(p.mean)} points of {sym}"
    if p.words == ZERO_VARIANCE:
        return (
            f"{who} vs {p.sl_method}: {ZERO_VARIANCE} (d = {_pp(p.mean)} in every one of "
            f"{len(p.seeds)} seeds; {gaps})."
        )
    if p.family == EXPLORATORY:
        ci = f"95% CI [{_pp(p.low)}, {_pp(p.high)}]"
        stats_ = f"p = {_p(p.p)}, Holm over all {p.family_size} tests made p = {_p(p.p_adjusted)}"
    else:
        ci = (
            f"family-wise 95% CI [{_pp(p.low)}, {_pp(p.high)}] (Bonferroni over "
            f"{p.family_size} test{'s' if p.family_size != 1 else ''})"
        )
        stats_ = f"Holm-adjusted p = {_p(p.p_adjusted)} (unadjusted {_p(p.p)})"
    tail = f": {d}, {ci}, {stats_}, over {len(p.seeds)} seeds ({gaps})."
    if p.words == TOO_FEW:
        return (
            f"{who} vs {p.sl_method}: {TOO_FEW} ({len(p.seeds)} paired seeds, at least "
            f"{MIN_SEEDS_FOR_WORDS} needed){tail}"
        )
    verb = {LESS: "loses less than", MORE: "loses more than"}.get(p.words)
    head = f"{who} {verb or 'shows ' + SAME + ' from'} {p.sl_method}"
    if p.family == EXPLORATORY:
        head = f"exploratory: {head}"
    elif p.family == SENSITIVITY:
        head = f"sensitivity ({sym}): {head}"
    return head + tail


def verdict_sentences(v: Verdict) -> list[str]:
    """Plain sentences for one Verdict: what is compared and in which family, the best SL
    variant, each pair on Δ and on Δ_learned, where the two disagree, and what was left out."""
    role = (
        "Confirmatory comparison"
        if v.confirmatory
        else "Exploratory comparison (not the confirmatory one; read as a lead, not a finding)"
    )
    lead = (
        f"{role}: {v.evaluation}, {v.comparison} gap (balanced vs {v.subset}), relative gap Δ "
        f"in {METRIC_WORDS.get(v.metric, v.metric)}"
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
    lines = [f"{lead}: {best}", *[paired_sentence(p, v.metric) for p in v.pairs]]
    if v.confirmatory:
        lines += [paired_sentence(p, v.metric) for p in v.learned_pairs]
        lines += disagreements(v)
    if v.near_floor:
        lines.append(
            "Left out of the confirmatory family, within "
            f"{100 * NEAR_FLOOR:.0f} points of the random-init floor (their Δ says nothing about "
            "robustness; their tests above are exploratory): " + ", ".join(v.near_floor) + "."
        )
    if v.left_out:
        lines.append("Left out (their seed pairs dropped): " + ", ".join(v.left_out) + ".")
    return lines


def disagreements(v: Verdict) -> list[str]:
    """Where Δ and Δ_learned give different words for the same pair, say so plainly."""
    learned = {(p.ssl_scenario, p.ssl_method, p.sl_method): p for p in v.learned_pairs}
    out = []
    for p in v.pairs:
        q = learned.get((p.ssl_scenario, p.ssl_method, p.sl_method))
        if q is None or p.words == q.words or TOO_FEW in (p.words, q.words):
            continue
        out.append(
            f"Δ and Δ_learned disagree for {p.ssl_method} vs {p.sl_method}: by Δ it "
            f"'{p.words}', by Δ_learned '{q.words}'. Δ divides by accuracy that includes what "
            "a random network already gets; Δ_learned by what was learned beyond it."
        )
    return out


def tests_table(vs: list[Verdict]) -> pd.DataFrame:
    """Every paired test the verdict made, one row each: the numbers its words come from."""
    rows = [
        {
            "evaluation": v.evaluation,
            "comparison": v.comparison,
            "subset": v.subset,
            "metric": v.metric,
            "measure": p.measure,
            "ssl_scenario": p.ssl_scenario,
            "ssl_method": p.ssl_method,
            "sl_method": p.sl_method,
            "family": p.family,
            "family_size": p.family_size,
            "seeds": len(p.seeds),
            "ssl_gap": p.ssl_rel_gap,
            "sl_gap": p.sl_rel_gap,
            "d_mean": p.mean,
            "d_sd": p.sd,
            "ci_level": p.level,
            "ci_low": p.low,
            "ci_high": p.high,
            "p": p.p,
            "p_adjusted": p.p_adjusted,
            "ssl_balanced_arm": p.ssl_accuracy[0],
            "ssl_imbalanced_arm": p.ssl_accuracy[1],
            "sl_balanced_arm": p.sl_accuracy[0],
            "sl_imbalanced_arm": p.sl_accuracy[1],
            "words": p.words,
        }
        for v in vs
        for p in (*v.pairs, *v.learned_pairs)
    ]
    return pd.DataFrame(rows)


def render(vs: list[Verdict], metric_reason: str | None = None) -> list[str]:
    """All verdicts as plain sentences, the confirmatory one first."""
    if not vs:
        return ["No SSL method has a balanced-vs-imbalanced gap, so there is no verdict."]
    lines = [f"The verdict uses {metric_reason}."] if metric_reason else []
    for v in vs:
        lines += verdict_sentences(v)
    return lines


def _own_gap(who: str, seeds: int, mean: float, low: float, high: float) -> str:
    if seeds == 1:
        return f"{who} {_pct(mean)} ({ONE_SEED})"
    return f"{who} {_pct(mean)}, 95% CI [{_pct(low)}, {_pct(high)}] over {seeds} seeds"


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

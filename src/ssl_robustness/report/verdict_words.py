"""The verdict in plain words: one sentence per paired test, the lines of one comparison, and
where Δ and Δ_learned disagree. Only formatting: every number comes from `verdict.py`."""

from __future__ import annotations

import math

import pandas as pd

from .floor import NEAR_FLOOR, NEAR_FLOOR_POINTS, below_floor_margin
from .verdict import (
    EXPLORATORY,
    LESS,
    MEASURES,
    MIN_SEEDS_FOR_WORDS,
    MORE,
    NO_SEED,
    NOT_CONCLUSIVE,
    ONE_SEED,
    PLAIN_SL,
    SAME,
    SENSITIVITY,
    TOO_FEW,
    ZERO_VARIANCE,
    Paired,
    Verdict,
    _missing,
    _truthy_one,
    equivalent,
    over_floor,
)

METRIC_WORDS = {"top1": "top-1", "balanced_accuracy": "balanced accuracy"}


def _pct(x: float) -> str:
    return "n/a" if _missing(x) else f"{100 * x:.1f}%"


def _pp(x: float) -> str:
    return "n/a" if _missing(x) else f"{100 * x:+.1f}"


def _acc(x: tuple[float, float]) -> str:
    """'40.6% → 38.1% (−2.5 points)': both arms and the absolute loss, so a reader sees
    whether "loses less" is only "had less to lose"."""
    if _missing(x[0]) or _missing(x[1]):
        return f"{_pct(x[0])} → {_pct(x[1])}"
    return f"{_pct(x[0])} → {_pct(x[1])} ({100 * (x[1] - x[0]):+.1f} points)"


def _seeds(seeds: tuple[int, ...]) -> str:
    return f"seed{'s' if len(seeds) != 1 else ''} {', '.join(str(s) for s in seeds)}"


def power_words(p: Paired) -> str:
    """What a "no detectable difference" could have seen: the minimum detectable effect at
    the family's strictest Holm threshold, from this study's spread and its upper bound."""
    if _missing(p.mde):
        return ""
    sym = MEASURES.get(p.measure, p.measure)
    return (
        f"this test had 80% power only for a true difference of at least {100 * p.mde:.1f} "
        f"points of {sym} ({100 * p.mde_upper:.1f} at the 95% upper bound of the spread; the "
        f"spread is the sd of this study's {len(p.seeds)} paired per-seed differences, "
        f"{100 * p.sd:.1f} points), so a smaller one could pass unseen"
    )


def equivalence_words(p: Paired) -> str:
    """The TOST's verdict against the registered margin, or nothing without one."""
    if _missing(p.p_equivalence):
        return ""
    margin = f"±{100 * p.equivalence_margin:.1f} points of {MEASURES.get(p.measure, p.measure)}"
    if equivalent(p):
        return (
            f"equivalent within {margin}: the two lose the same up to the registered margin "
            f"(paired TOST p = {_p(p.p_equivalence)})"
        )
    return (
        f"equivalence within {margin} is not shown (paired TOST p = {_p(p.p_equivalence)}), so "
        "this is no evidence that they lose the same"
    )


def _p(x: float) -> str:
    return "n/a" if _missing(x) else (f"{x:.2g}" if x < 0.001 else f"{x:.3f}")


def paired_sentence(p: Paired, metric: str = "top1") -> str:
    """e.g. 'simclr (SSL-in-domain) loses less than supervised: d = −4.1 points of Δ,
    family-wise 95% CI [−7.0, −1.2] (Bonferroni over 2 tests), Holm p = 0.021 (unadjusted
    0.011), 5 seeds; Δ 3.0% vs 7.1%; top-1 balanced → imbalanced arm 41.2% → 40.8% vs
    supervised's 53.9% → 48.1%.'"""
    who = f"{p.ssl_method} ({p.ssl_scenario})"
    sym = MEASURES.get(p.measure, p.measure)
    if p.words == NOT_CONCLUSIVE:
        return (
            f"{who} vs {p.sl_method}: {NOT_CONCLUSIVE}: {p.note} (no test on the seeds that "
            "survived)."
        )
    if not p.seeds:
        why = p.note or f"no seed where both have a usable {sym}"
        return f"{who} vs {p.sl_method}: {NO_SEED} ({why})."
    gaps = f"{sym} {_pct(p.ssl_rel_gap)} vs {_pct(p.sl_rel_gap)}"
    if not _missing(p.ssl_accuracy[0]):
        sl_arms = "" if _missing(p.sl_accuracy[0]) else f" vs {p.sl_method}'s {_acc(p.sl_accuracy)}"
        gaps += (
            f"; {METRIC_WORDS.get(metric, metric)} balanced → imbalanced arm "
            f"{_acc(p.ssl_accuracy)}{sl_arms}"
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
    extra = [
        x
        for x in (
            p.note,
            power_words(p) if p.words == SAME else "",
            equivalence_words(p),
            (
                f"Δ_learned undefined in {_seeds(p.undefined_seeds)} (a balanced arm within "
                f"{NEAR_FLOOR_POINTS:.0f} points of its floor), so those seeds are not in it"
            )
            if p.undefined_seeds
            else "",
        )
        if x
    ]
    more = "".join(f"; {x}" for x in extra)
    tail = f": {d}, {ci}, {stats_}, over {len(p.seeds)} seeds ({gaps}){more}."
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
        best = sl_lead(v)
    lines = [f"{lead}: {best}", *[paired_sentence(p, v.metric) for p in v.pairs]]
    if v.confirmatory:
        lines += [paired_sentence(p, v.metric) for p in v.learned_pairs]
    lines += disagreements(v)
    if v.near_floor:
        lines.append(
            "Not fit for the confirmatory family, judged on the balanced arm alone (within "
            f"{NEAR_FLOOR_POINTS:.0f} points of the random-init floor, or collapsed, when the "
            "data are balanced: it learned ~nothing to lose; its tests above are exploratory): "
            + ", ".join(v.near_floor)
            + "."
        )
    if v.collapsed:
        lines.append(
            "Collapsed (feature spread ~0), kept in their gaps as measured: collapse under "
            "imbalance is an outcome, not a reason to leave an arm out: "
            + ", ".join(v.collapsed)
            + "."
        )
    if v.left_out:
        lines.append(
            "Failed, no accuracy (their seed pairs have no gap): " + ", ".join(v.left_out) + "."
        )
    return lines


def sl_lead(v: Verdict) -> str:
    """The SL side of a verdict: the registered comparator (confirmatory), and the variant that
    lost least, labelled as chosen after the fact (its Δ is biased low by that choice)."""
    assert v.best_sl is not None
    others = ", ".join(f"{m} {_pct(g)}" for m, g in v.sl_rel_gaps.items() if m != v.best_sl)
    after = (
        f"the SL variant that lost least, chosen after the fact and so exploratory: {v.best_sl} "
        f"(Δ {_pct(v.sl_rel_gaps[v.best_sl])})"
    ) + (f"; others: {others}" if others else "")
    if not v.confirmatory:
        return after + "."
    if v.against == "every":
        return f"registered test: against every SL variant (intersection-union); {after}."
    if v.comparator is None:
        return (
            "no SL comparator was registered and none can be told (several SL variants, no "
            f"plain '{PLAIN_SL}'), so there is no confirmatory test; {after}."
        )
    gap = v.sl_rel_gaps.get(v.comparator)
    shown = _pct(gap) if gap is not None else "n/a"
    return f"registered SL comparator: {v.comparator} (Δ {shown}); {after}."


def disagreement(p: Paired, q: Paired) -> str | None:
    """How Δ's pair `p` and Δ_learned's `q` of one comparison disagree: "words" (each has
    words, not the same), "direction" (mean paired differences of opposite sign over the same
    seeds, Δ_learned defined in each, neither rounding to 0.0 points), or None. The verdict's
    lines and the bottom line's caveat both ask here, so the two never differ."""
    if len(p.seeds) < 2 or len(q.seeds) < 2:
        return None
    if {p.words, q.words} <= {LESS, MORE, SAME} and p.words != q.words:
        return "words"
    same = not p.undefined_seeds and not q.undefined_seeds and set(p.seeds) == set(q.seeds)
    return "direction" if same and opposite(p.mean, q.mean) else None


def opposite(a: float, b: float, tiny: float = 0.0005) -> bool:
    """Mean paired differences (fractions of Δ, as `Paired.mean`) of opposite sign, each beyond
    what rounds to 0.0 points."""
    return math.isfinite(a) and math.isfinite(b) and min(abs(a), abs(b)) >= tiny and a * b < 0


def learned_twins(v: Verdict) -> list[tuple[Paired, Paired]]:
    """Each pair on Δ with its twin on Δ_learned (the same SSL method and SL variant)."""
    learned = {(p.ssl_scenario, p.ssl_method, p.sl_method): p for p in v.learned_pairs}
    twins = [(p, learned.get((p.ssl_scenario, p.ssl_method, p.sl_method))) for p in v.pairs]
    return [(p, q) for p, q in twins if q is not None]


def disagreements(v: Verdict) -> list[str]:
    """Where Δ and Δ_learned give different words, or point in opposite directions, for the
    same pair (in any comparison, exploratory too), say so plainly."""
    out = []
    for p, q in learned_twins(v):
        kind = disagreement(p, q)
        if kind == "words":
            out.append(
                f"Δ and Δ_learned disagree for {p.ssl_method} vs {p.sl_method} ({v.evaluation}, "
                f"{v.comparison}): by Δ it '{p.words}', by Δ_learned '{q.words}'. Δ divides by "
                "accuracy that includes what a random network already gets; Δ_learned by what "
                "was learned beyond it."
            )
        elif kind == "direction":
            out.append(
                f"Δ and Δ_learned point in opposite directions for {p.ssl_method} vs "
                f"{p.sl_method} ({v.evaluation}, {v.comparison}): d = {_pp(p.mean)} points of Δ "
                f"but {_pp(q.mean)} of Δ_learned; neither direction is a finding."
            )
    return out


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


def near_floor(
    results: pd.DataFrame, margin: float = NEAR_FLOOR, metric: str = "top1"
) -> list[str]:
    """Sentences naming every trained representation and evaluation that beats the random-init
    floor of the same seed and adaptation by less than `margin`, in the verdict's metric. A
    balanced arm there learned little; an imbalanced arm there lost what its balanced twin
    learned, which is a measured loss and counts."""
    over = over_floor(results, metric)
    if over.isna().all():
        return []
    rows = results[over.map(lambda x: below_floor_margin(float(x), 100 * margin))]
    floor_col = f"floor_{metric}" if f"floor_{metric}" in results else "floor_top1"
    words = METRIC_WORDS.get(metric, metric)
    out = []
    for i, r in rows.iterrows():
        balanced = _truthy_one(r.get("balanced"))
        what = (
            "it learned little (a balanced arm: not fit for the confirmatory family)"
            if balanced
            else "it lost what its balanced twin learned (an imbalanced arm: a loss, counted)"
        )
        value = r.get(metric, r.get("top1"))
        out.append(
            f"{r['representation']} on {r['evaluation']}: {words} {100 * float(value):.1f}% vs "
            f"random init {100 * float(r[floor_col]):.1f}% ({100 * float(over[i]):+.1f} points): "
            f"within {100 * margin:.0f} points of the floor, {what}"
        )
    return out

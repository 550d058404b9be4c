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
from .floor import NEAR_FLOOR_POINTS, below_floor_margin, margin_points
from .paired import ALPHA, MIN_SEEDS_FOR_WORDS, holm, interval_from, paired_p, t_interval
from .power import min_detectable_effect, sd_upper, tost_p

HEADLINE = ("linear-balanced", "pretraining")  # Liu et al.'s protocol: the default confirmatory
COMPARISON_ORDER = ("pretraining", "end-to-end", "fixed-representation")
PLAIN_SL = "supervised"  # the plain cross-entropy baseline: the default SL comparator
EVERY_SL = "every SL variant"  # the SL side of an intersection-union test (`against: every`)

LESS, MORE, SAME = "loses less", "loses more", "no detectable difference"
ONE_SEED, NO_SEED = "one seed, no interval", "no seed to compare"
TOO_FEW = "too few seeds for words"
ZERO_VARIANCE = "zero variance over seeds, no test"
NOT_CONCLUSIVE = "not conclusive"
MEASURES = {"rel_gap": "Δ", "learned_rel_gap": "Δ_learned"}
CONFIRMATORY, SENSITIVITY, EXPLORATORY = "confirmatory", "sensitivity", "exploratory"


@dataclass(frozen=True)
class Confirmatory:
    """The registered confirmatory test (registration.json; a run made before registration:
    its config). Every SSL method is tested against one SL comparator fixed in advance, or
    against every SL variant at once (`against: every`, an intersection-union test)."""

    evaluation: str = HEADLINE[0]
    comparison: str = HEADLINE[1]
    sl_comparator: str | None = None  # None: the plain baseline, or the only SL variant
    against: str = "one"
    subsets: tuple[str, ...] | None = None  # None: every imbalanced arm
    equivalence_margin: float | None = None  # points of Δ; None: no equivalence test
    seeds: tuple[int, ...] | None = None  # registered seeds: a pair missing one has no test

    @classmethod
    def of(cls, x: Confirmatory | tuple[str, str]) -> Confirmatory:
        return x if isinstance(x, Confirmatory) else cls(str(x[0]), str(x[1]))

    @property
    def pair(self) -> tuple[str, str]:
        return (self.evaluation, self.comparison)

    def covers(self, evaluation: str, comparison: str, subset: str) -> bool:
        return (evaluation, comparison) == self.pair and (
            self.subsets is None or subset in self.subsets
        )

    def comparator_among(self, sl_methods: list[str]) -> str | None:
        """The SL comparator of this study: the registered one, else the plain baseline, else
        the only SL variant; None where it cannot be told (several, none plain)."""
        if self.sl_comparator is not None:
            return self.sl_comparator
        if PLAIN_SL in sl_methods:
            return PLAIN_SL
        unique = list(dict.fromkeys(sl_methods))
        return unique[0] if len(unique) == 1 else None


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
    # set in the confirmatory and sensitivity families: the smallest true mean difference the
    # test had 80% power to detect at the family's strictest Holm threshold, from the spread of
    # the paired differences, and at that spread's 95% upper confidence bound
    mde: float = math.nan
    mde_upper: float = math.nan
    p_equivalence: float = math.nan  # paired TOST against the registered margin
    equivalence_margin: float = math.nan  # as a fraction (points / 100)
    note: str = ""  # why there are no words (not conclusive), or the variant an IUT did not beat
    undefined_seeds: tuple[int, ...] = ()  # Δ_learned: seeds whose balanced arm learned ~nothing


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
    left_out: tuple[str, ...] = field(default=())  # failed representations (no accuracy)
    # each SSL method's own Δ over its usable seeds: "method (scenario)" -> (seeds, mean, 95% CI)
    ssl_rel_gaps: dict[str, tuple[int, float, float, float]] = field(default_factory=dict)
    study_has_sl: bool = True  # False: the study trained no SL arm at all
    learned_pairs: tuple[Paired, ...] = field(default=())  # the same pairs on Δ_learned
    confirmatory: bool = False  # the study's one confirmatory comparison
    near_floor: tuple[str, ...] = field(default=())  # out of the family: balanced arm learned ~0
    comparator: str | None = None  # the registered SL comparator (None: none can be told)
    against: str = "one"
    collapsed: tuple[str, ...] = field(default=())  # collapsed arms, kept as measured
    # failed arms of the methods compared: method -> ((arm, seed), ...)
    failed: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    equivalence_margin: float | None = None  # points of Δ, registered; None: no TOST
    seeds: tuple[int, ...] | None = None  # registered seeds (confirmatory only)

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
    confirmatory: Confirmatory | tuple[str, str] = HEADLINE,
) -> list[Verdict]:
    """One Verdict per (evaluation, comparison, imbalanced subset) where an SSL method has
    gaps, the confirmatory one first; every test's family, adjusted p, interval and words set.

    Nothing the outcome carries decides what is tested: a collapsed arm enters its gap as
    measured, fitness for the confirmatory family is read off the balanced arm alone, and a
    failed arm of a confirmatory pair makes its words "not conclusive" instead of a test on
    the seeds that survived."""
    col = f"{metric}_rel_gap"
    if gap_runs.empty or col not in gap_runs:
        return []
    conf = Confirmatory.of(confirmatory)
    runs = gap_runs if "comparison" in gap_runs else gap_runs.assign(comparison="pretraining")
    runs = runs[runs["comparison"] != "cross-scenario"]
    bad = left_out_representations(results)
    failed = bad[bad["why"] == "failed"]
    usable = runs[~_touches(runs, failed)]
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
            conf if conf.covers(str(ev), str(comparison), str(subset)) else None,
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
    conf: Confirmatory | None,
) -> Verdict:
    """`conf`: the registered test, where this evaluation, gap kind and arm are confirmatory."""
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
    learned = runs.get("learned_rel_gap", {})
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
                p = _paired(
                    (scenario, method, sl),
                    measure,
                    per_seed.get((scenario, method), {}),
                    per_seed.get((SL, sl), {}),
                    acc,
                )
                if measure == "learned_rel_gap":
                    p = _without_undefined(p, _undefined(delta, learned, scenario, method, sl))
                pairs[measure].append(p)
    comparator = conf.comparator_among(sl_methods) if conf and sl_methods else None
    floor = _unfit_methods(results, evaluation, metric) if conf else {}
    if conf is not None and conf.against == "every" and sl_methods:
        for measure in pairs:
            pairs[measure] += _every_sl(pairs[measure], sl_methods, floor)
    return Verdict(
        evaluation,
        comparison,
        subset,
        metric,
        best,
        sl_gaps,
        tuple(pairs.get("rel_gap", [])),
        _named(bad[bad["why"] == "failed"], everything, evaluation, bool(sl_methods)),
        own,
        bool(sl_all),
        tuple(pairs.get("learned_rel_gap", [])),
        conf is not None,
        tuple(f"{m} ({why})" for m, why in floor.items()),
        comparator,
        conf.against if conf else "one",
        _collapsed(bad, everything, evaluation),
        _failed_arms(bad, evaluation, {subset, "-", *_balanced_names(results)}),
        conf.equivalence_margin if conf else None,
        conf.seeds if conf else None,
    )


def _balanced_names(results: pd.DataFrame) -> set[str]:
    if "balanced" not in results or "subset" not in results:
        return {"balanced"}
    return {"balanced", *results.loc[truthy(results, "balanced"), "subset"].astype(str)}


def _undefined(
    delta: dict[tuple[str, str], dict[int, float]],
    learned: dict[tuple[str, str], dict[int, float]],
    scenario: str,
    method: str,
    sl: str,
) -> tuple[int, ...]:
    """Seeds where both have Δ but Δ_learned is undefined for one of them (its balanced arm
    within the near-floor margin of its random-init floor)."""
    both = set(delta.get((scenario, method), {})) & set(delta.get((SL, sl), {}))
    defined = set(learned.get((scenario, method), {})) & set(learned.get((SL, sl), {}))
    return tuple(sorted(both - defined))


def _without_undefined(p: Paired, undefined: tuple[int, ...]) -> Paired:
    """A Δ_learned pair with a seed where it is undefined gets no test at all: dropping that
    seed alone would select on the denominator (the seeds whose balanced arm learned more)."""
    if not undefined:
        return p
    return replace(
        p,
        seeds=(),
        words=NO_SEED,
        p=math.nan,
        undefined_seeds=undefined,
        note=(
            f"Δ_learned undefined in seed{'s' if len(undefined) > 1 else ''} "
            f"{', '.join(str(s) for s in undefined)} (a balanced arm within "
            f"{NEAR_FLOOR_POINTS:.0f} points of its random-init floor, or no floor recorded), "
            "so there is no Δ_learned test for this pair"
        ),
    )


def _every_sl(pairs: list[Paired], sl_methods: list[str], unfit: dict[str, str]) -> list[Paired]:
    """Intersection-union tests: for each SSL method, "loses less (more) than every SL
    variant" holds only if it does so against each fit variant, each at the family's alpha;
    the combined p is the largest of them (no further adjustment over the variants). Its d and
    interval are those of the variant it came nearest to not beating (named); where the
    difference changes sign across the variants there is no single interval."""
    fit = [m for m in sl_methods if m not in unfit]
    left = [m for m in sl_methods if m in unfit]
    apart = f"; left out as unfit on balanced data: {', '.join(left)}" if left else ""
    out = []
    for group in _by_ssl(pairs).values():
        parts = [p for p in group if p.sl_method in fit and len(p.seeds) >= 2]
        base = replace(group[0], sl_method=EVERY_SL, sl_accuracy=(math.nan, math.nan))
        if not fit or len(parts) < len(fit):
            missing = sorted(set(fit) - {p.sl_method for p in parts})
            out.append(
                replace(
                    base,
                    seeds=(),
                    words=NO_SEED,
                    p=math.nan,
                    note=f"no paired test against {', '.join(missing) or 'any fit SL variant'}"
                    + apart,
                )
            )
            continue
        signs = {math.copysign(1, p.mean) for p in parts}
        ps = [1.0 if _missing(p.p) else p.p for p in parts]
        each = ", ".join(f"{p.sl_method} (d {100 * p.mean:+.1f}, p {p.p:.3g})" for p in parts)
        if len(signs) == 1:
            weakest = parts[int(np.argmax(ps))]
            note = (
                f"it must beat each of {', '.join(fit)}: {each}; d and interval shown against "
                f"{weakest.sl_method}, the variant it came nearest to not beating{apart}"
            )
            out.append(
                replace(
                    weakest,
                    sl_method=EVERY_SL,
                    p=max(ps),
                    note=note,
                    sl_accuracy=(math.nan, math.nan),
                )
            )
        else:
            note = (
                f"its difference changes sign across the SL variants ({each}), so it neither "
                f"loses less nor more than every one and no single interval applies{apart}"
            )
            out.append(
                replace(
                    base,
                    seeds=parts[0].seeds,
                    mean=math.nan,
                    low=math.nan,
                    high=math.nan,
                    sd=math.nan,
                    p=1.0,
                    note=note,
                )
            )
    return out


def _by_ssl(pairs: list[Paired]) -> dict[tuple[str, str], list[Paired]]:
    out: dict[tuple[str, str], list[Paired]] = {}
    for p in pairs:
        if p.sl_method != EVERY_SL:
            out.setdefault((p.ssl_scenario, p.ssl_method), []).append(p)
    return out


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
        if not v.confirmatory or p.ssl_method in _unfit_names(v):
            return EXPLORATORY
        if v.against == "every":
            member = p.sl_method == EVERY_SL
        else:
            member = p.sl_method == v.comparator and v.comparator not in _unfit_names(v)
        if not member:
            return EXPLORATORY
        return CONFIRMATORY if kind == "pairs" else SENSITIVITY

    fam = {slot: family(*slot) for slot in slots}
    vs = [_inconclusive(v, i, fam) for i, v in enumerate(vs)]
    # every test made: two paired seeds or more; one with zero variance counts, never rejecting;
    # an intersection-union test combines tests already counted; a failed confirmatory pair
    # counts in its family as a test that cannot reject
    every = [
        slot
        for slot in slots
        if (len(_test(vs, slot).seeds) >= 2 or _test(vs, slot).words == NOT_CONCLUSIVE)
        and (fam[slot] != EXPLORATORY or _test(vs, slot).sl_method != EVERY_SL)
    ]

    def ps(members: list[tuple[int, str, int]]) -> list[float]:
        return [1.0 if _missing(_test(vs, s).p) else _test(vs, s).p for s in members]

    adjusted: dict[tuple[int, str, int], tuple[float, int]] = {}
    for name in (CONFIRMATORY, SENSITIVITY):
        members = [s for s in every if fam[s] == name]
        for s, q in zip(members, holm(ps(members)), strict=True):
            adjusted[s] = (q, len(members))
    singles = [s for s in every if _test(vs, s).sl_method != EVERY_SL]
    all_q = holm(ps(singles))
    for s, q in zip(singles, all_q, strict=True):
        if fam[s] == EXPLORATORY:
            adjusted[s] = (q, len(singles))
    out = []
    for i, v in enumerate(vs):
        new = {}
        for kind in ("pairs", "learned_pairs"):
            new[kind] = tuple(
                _finish(p, fam[(i, kind, j)], *adjusted.get((i, kind, j), (math.nan, 0)))
                for j, p in enumerate(getattr(v, kind))
            )
            if v.confirmatory and v.equivalence_margin is not None and kind == "pairs":
                new[kind] = tuple(
                    _equivalence(p, v.equivalence_margin, new[kind], _unfit_names(v))
                    for p in new[kind]
                )
        out.append(replace(v, **new))
    return out


def _unfit_names(v: Verdict) -> set[str]:
    return {n.split(" (")[0] for n in v.near_floor}


def _inconclusive(v: Verdict, i: int, fam: dict[tuple[int, str, int], str]) -> Verdict:
    """A confirmatory pair one of whose methods has a failed arm, or that lacks a registered
    seed, gets no test on the seeds that survived: its words are "not conclusive", naming the
    arm and seed."""
    fit_sl = [m for m in v.sl_rel_gaps if m not in _unfit_names(v)]
    new = {}
    for kind in ("pairs", "learned_pairs"):
        fixed = []
        for j, p in enumerate(getattr(v, kind)):
            if fam[(i, kind, j)] == EXPLORATORY or p.undefined_seeds:
                fixed.append(p)
                continue
            sides = [p.ssl_method, *(fit_sl if p.sl_method == EVERY_SL else [p.sl_method])]
            why = [
                f"{m}'s {arm} arm failed in seed {seed}"
                for m in dict.fromkeys(sides)
                for arm, seed in v.failed.get(m, ())
            ]
            absent = [s for s in v.seeds or () if s not in p.seeds]
            if absent and not why:
                why = [
                    f"registered seed{'s' if len(absent) > 1 else ''} "
                    f"{', '.join(str(s) for s in absent)} {'have' if len(absent) > 1 else 'has'} "
                    f"no paired result for {p.ssl_method} and {p.sl_method}"
                ]
            fixed.append(
                replace(p, words=NOT_CONCLUSIVE, p=math.nan, note="; ".join(why)) if why else p
            )
        new[kind] = tuple(fixed)
    return replace(v, **new)


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
    mde = mde_upper = math.nan
    if family != EXPLORATORY and len(p.seeds) >= 2 and not _missing(p.sd) and p.sd > 0:
        strictest = ALPHA / max(size, 1)  # Holm's first threshold
        mde = min_detectable_effect(len(p.seeds), p.sd, strictest)
        mde_upper = min_detectable_effect(len(p.seeds), sd_upper(p.sd, len(p.seeds)), strictest)
    return replace(
        p,
        low=low,
        high=high,
        words=words,
        p_adjusted=p_adjusted,
        family=family,
        family_size=size,
        level=level,
        mde=mde,
        mde_upper=mde_upper,
    )


def _equivalence(
    p: Paired, margin_points: float, pairs: tuple[Paired, ...], unfit: set[str]
) -> Paired:
    """The paired TOST of Δ against the registered margin, at the family's Bonferroni level
    (the level of its interval): equivalence words only where it rejects, only for a worded
    test. Against every SL variant, equivalent to each: the largest TOST p over the variants."""
    if p.family == EXPLORATORY or p.words not in (LESS, MORE, SAME):
        return p
    if len(p.seeds) < MIN_SEEDS_FOR_WORDS:
        return p
    margin = margin_points / 100
    if p.sl_method == EVERY_SL:
        parts = [
            q
            for q in pairs
            if (q.ssl_scenario, q.ssl_method) == (p.ssl_scenario, p.ssl_method)
            and q.sl_method not in (EVERY_SL, *unfit)
        ]
        tosts = [tost_p(q.mean, q.sd, len(q.seeds), margin) for q in parts if len(q.seeds) >= 2]
        value = max(tosts) if tosts and not any(math.isnan(t) for t in tosts) else math.nan
    elif _missing(p.sd):
        return p
    else:
        value = tost_p(p.mean, p.sd, len(p.seeds), margin)
    return replace(p, p_equivalence=value, equivalence_margin=margin)


def equivalent(p: Paired) -> bool:
    """The TOST rejected: the mean difference lies within ±margin at the family's level."""
    return not _missing(p.p_equivalence) and p.p_equivalence < 1 - p.level


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


def _unfit_methods(
    results: pd.DataFrame,
    evaluation: str,
    metric: str = "top1",
    points: float = NEAR_FLOOR_POINTS,
) -> dict[str, str]:
    """Methods not fit for the confirmatory family, judged on their balanced arm alone (which
    does not carry the outcome): it beats the random-init floor of this evaluation by less than
    `points` on average over seeds (in the verdict's metric, rounded to 0.1 points), or it
    collapsed in some seed. An imbalanced arm at the floor is a large loss and counts."""
    if "evaluation" not in results or "balanced" not in results:
        return {}
    ok = results.get("status", pd.Series("ok", index=results.index)).astype(str) != "failed"
    keep = (results["evaluation"] == evaluation) & truthy(results, "balanced") & ok
    rows, margins = results[keep], over_floor(results, metric)[keep]
    out = {}
    for method, g in rows.groupby("method", sort=False):
        collapsed = g[truthy(g, "collapsed")]
        mean = margins[g.index].mean()
        if len(collapsed):
            seeds = ", ".join(str(int(s)) for s in sorted(collapsed["seed"].unique()))
            out[str(method)] = f"its balanced arm collapsed in seed {seeds}"
        elif below_floor_margin(float(mean), points):
            out[str(method)] = (
                f"{margin_points(float(mean)):+.1f} points over the random-init floor in its "
                "balanced arm"
            )
    return out


def _collapsed(bad: pd.DataFrame, group: pd.DataFrame, evaluation: str) -> tuple[str, ...]:
    """Collapsed representations of this comparison: kept as measured, named."""
    rows = bad[bad["why"] == "collapsed"]
    if "evaluation" in rows:
        rows = rows[rows["evaluation"].isna() | (rows["evaluation"] == evaluation)]
    methods = set(group["method"])
    return tuple(
        dict.fromkeys(
            str(r["representation"]) for _, r in rows.iterrows() if r.get("method") in methods
        )
    )


def _failed_arms(
    bad: pd.DataFrame, evaluation: str, arms: set[str]
) -> dict[str, tuple[tuple[str, int], ...]]:
    """method -> the (arm, seed) of each of its representations that failed, among `arms` (the
    balanced arm and this verdict's imbalanced arm; "-": a fixed representation)."""
    rows = bad[bad["why"] == "failed"]
    out: dict[str, list[tuple[str, int]]] = {}
    for _, r in rows.iterrows():
        if any(_missing(r.get(k)) for k in ("method", "seed")):
            continue
        if not _missing(r.get("evaluation")) and r.get("evaluation") != evaluation:
            continue
        arm = str(r.get("subset")) if not _missing(r.get("subset")) else "-"
        if arm not in arms:
            continue
        out.setdefault(str(r["method"]), []).append((arm, int(r["seed"])))
    return {m: tuple(sorted(set(v))) for m, v in out.items()}


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
            "mde": p.mde,
            "mde_upper": p.mde_upper,
            "p_equivalence": p.p_equivalence,
            "equivalence_margin": p.equivalence_margin,
            "words": p.words,
            "note": p.note,
        }
        for v in vs
        for p in (*v.pairs, *v.learned_pairs)
    ]
    return pd.DataFrame(rows)

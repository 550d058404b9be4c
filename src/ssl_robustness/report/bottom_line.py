"""The report's bottom line: one short paragraph in plain words that a reader can stop after.

What the confirmatory comparison found, from which absolute accuracies, over how many seeds,
and only the caveats that change how far it can be trusted (too few seeds, representations
near the random-init floor, a test set too small for per-class claims, what was left out).
Built from the same Verdicts as the verdict's lines, so the two never disagree."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..data.split.leakage import GROUPS_PER_TEST_CLASS
from . import verdict as V
from . import verdict_words as W
from .classes import fewest_test_images
from .floor import NEAR_FLOOR, below_floor_margin

PER_CLASS_TEST_MIN = 50  # below this many test images per class, per-class claims are coarse


def bottom_line(
    top: list[V.Verdict],
    vs: list[V.Verdict],
    confirmatory: tuple[str, str],
    results: pd.DataFrame,
    stats: dict[str, Any],
) -> str:
    """The paragraph for the confirmatory Verdicts `top` (all verdicts `vs`); callers put
    'Bottom line:' before it in their own markup."""
    if not top:
        if not vs:
            return (
                "No SSL method has a balanced-vs-imbalanced gap, so this study "
                "cannot say whether SSL loses less than SL under imbalance."
            )
        return (
            f"The declared confirmatory comparison ({confirmatory[0]}, "
            f"{confirmatory[1]} gap) was not run in this study, so nothing here is a finding; "
            "every comparison below is exploratory."
        )
    sentences = [s for v in top for s in _found(v)]
    caveats = [c for v in top for c in _caveats(v, results)]
    for caveat in (_small_test(stats), _one_class_tier(stats), _few_test_groups(stats)):
        if caveat:
            caveats.append(caveat)
    text = " ".join([*sentences, *_data_used(stats)])
    if caveats:
        text += " Caveats: " + "; ".join(dict.fromkeys(caveats)) + "."
    return text


def _found(v: V.Verdict) -> list[str]:
    """What the confirmatory comparison found for one imbalanced arm."""
    words = W.METRIC_WORDS.get(v.metric, v.metric)
    where = f"{v.evaluation} ({v.comparison} gap, {words}, balanced arm vs {v.subset})"
    if v.best_sl is None:
        why = "no SL variant has a usable gap" if v.study_has_sl else "this study trained no SL arm"
        return [f"on {where} {why}, so it cannot say whether SSL loses less than SL."]
    if v.against == "every":
        sl_name, who = V.EVERY_SL, "every SL variant (an intersection-union test)"
    elif v.comparator is None:
        return [
            f"on {where} no SL comparator was registered and none can be told (several SL "
            f"variants, no plain '{V.PLAIN_SL}'), so there is no confirmatory test."
        ]
    else:
        sl_name, who = v.comparator, f"{v.comparator} (the registered SL comparator)"
    unfit = {n.split(" (")[0]: n for n in v.near_floor}
    if v.against != "every" and sl_name in unfit:
        detail = unfit[sl_name].split(" (", 1)[1].rstrip(")")
        return [
            f"on {where} there is no confirmatory test: the registered SL comparator {sl_name} "
            f"learned ~nothing on balanced data ({detail}), so no SSL method can be compared "
            "with it."
        ]
    mine = [p for p in v.pairs if p.sl_method == sl_name]
    pairs = [p for p in mine if p.seeds or p.words == V.NOT_CONCLUSIVE]
    if not pairs:
        return [f"on {where} no SSL method shares a seed with {sl_name}, so there is no test."]
    seeds = max(len(p.seeds) for p in pairs)
    arms = "; ".join(f"{p.ssl_method} {_arms(p.ssl_accuracy, p.ssl_rel_gap)}" for p in pairs)
    if v.against == "every":
        head = f"On {where}, over {seeds} seed{'s' if seeds != 1 else ''}, {arms}."
    else:
        sl = pairs[0]
        head = (
            f"On {where}, over {seeds} seed{'s' if seeds != 1 else ''}, {who} "
            f"{_arms(sl.sl_accuracy, sl.sl_rel_gap)}; {arms}."
        )
    return [head, _finding(pairs, who if v.against == "every" else sl_name)]


def _arms(acc: tuple[float, float], rel_gap: float) -> str:
    """'went from 80.1% to 75.2% (Δ 6.1%)'; an older run's tables lack the arms' accuracy."""
    if any(V._missing(a) for a in acc):
        return f"had Δ {W._pct(rel_gap)}"
    points = 100 * (acc[1] - acc[0])
    return (
        f"went from {W._pct(acc[0])} to {W._pct(acc[1])} ({points:+.1f} points, "
        f"Δ {W._pct(rel_gap)})"
    )


def _finding(pairs: list[V.Paired], sl: str) -> str:
    """The words of the confirmatory tests against the best SL variant, or why there are none."""
    worded = [p for p in pairs if p.words in (V.LESS, V.MORE, V.SAME)]
    # a method not fit for the family (its balanced arm near the floor) has only an
    # exploratory test
    said = [p for p in worded if p.family == V.CONFIRMATORY]
    outside = [p for p in worded if p not in said]
    failed = [p for p in pairs if p.words == V.NOT_CONCLUSIVE]
    unsaid = [p for p in pairs if p not in worded and p not in failed]
    parts = []
    for p in said:
        verb = {V.LESS: f"loses less than {sl}", V.MORE: f"loses more than {sl}"}.get(
            p.words, f"shows no detectable difference from {sl}"
        )
        extra = [
            x for x in (W.power_words(p) if p.words == V.SAME else "", W.equivalence_words(p)) if x
        ]
        if sl.startswith(V.EVERY_SL) and p.note:
            extra.insert(0, p.note)
        parts.append(
            f"{p.ssl_method} {verb} (d = {W._pp(p.mean)} points of Δ, family-wise 95% CI "
            f"[{W._pp(p.low)}, {W._pp(p.high)}]{''.join(f'; {x}' for x in extra)})"
        )
    text = ("The confirmatory test finds: " + "; ".join(parts) + ".") if parts else ""
    for p in failed:
        text += f" For {p.ssl_method} against {sl}: not conclusive: {p.note}."
    if outside:
        names = ", ".join(p.ssl_method for p in outside)
        text += (
            f" {names} {'is' if len(outside) == 1 else 'are'} outside the confirmatory family "
            "(see the caveats), so its comparison with "
            f"{sl} is exploratory only and not a finding."
        )
    if unsaid:
        fewest = min(len(p.seeds) for p in unsaid)
        why = {
            V.ZERO_VARIANCE: "the seeds gave identical differences, so there is no test",
        }.get(
            unsaid[0].words,
            f"{fewest} paired seed{'s give' if fewest != 1 else ' gives'} no words (at least "
            f"{V.MIN_SEEDS_FOR_WORDS} are needed)",
        )
        names = ", ".join(p.ssl_method for p in unsaid)
        text += f" For {names} against {sl}: {why}, so this study is not conclusive."
    return text.strip()


def _caveats(v: V.Verdict, results: pd.DataFrame) -> list[str]:
    out = []
    # v.near_floor: "name (detail)", left out of the family; results: any seed near the floor
    out_of_test = list(dict.fromkeys(n.split(" (")[0] for n in v.near_floor))
    some_seed = [
        m
        for m in _near_floor_methods(results, v.evaluation, v.metric, balanced=True)
        if m not in out_of_test
    ]
    floor = f"within {100 * NEAR_FLOOR:.0f} points of the random-init floor on {v.evaluation}"
    if out_of_test:
        out.append(
            f"{', '.join(out_of_test)} {floor} in the balanced arm on average over seeds, or "
            "collapsed there (nothing learned to lose, so not fit for the test; judged on the "
            "balanced arm alone)"
        )
    if some_seed:
        out.append(
            f"{', '.join(dict.fromkeys(some_seed))} {floor} in the balanced arm of some seed "
            "(still in the test: the rule is the mean over seeds)"
        )
    if v.left_out:
        out.append("failed (no accuracy): " + ", ".join(v.left_out))
    if v.collapsed:
        out.append("collapsed, kept in the gaps as measured: " + ", ".join(v.collapsed))
    out += _disagreeing(v)
    return out


def _near_floor_methods(
    results: pd.DataFrame, evaluation: str, metric: str, balanced: bool = False
) -> list[str]:
    """Methods with a row near the floor on `evaluation`; `balanced`: balanced arms only (an
    imbalanced arm at the floor is a loss, not a reason to discount the gap)."""
    if "evaluation" not in results:
        return []
    near = V.over_floor(results, metric).map(lambda x: below_floor_margin(float(x)))
    if balanced:
        near &= V.truthy(results, "balanced")
    rows = results[(results["evaluation"] == evaluation) & near]
    return list(dict.fromkeys(rows["method"].astype(str)))


def _disagreeing(v: V.Verdict) -> list[str]:
    """Comparisons where Liu et al.'s Δ and Δ_learned (each arm over its own random-init floor)
    do not tell one story: different words, or mean paired differences of opposite sign (SSL
    loses less on one, more on the other), which two seeds' "too few" words would hide; by the
    verdict's own rule (`verdict_words.disagreement`)."""
    out = []
    for p, q in W.learned_twins(v):
        name = f"{p.ssl_method} vs {p.sl_method}"
        kind = W.disagreement(p, q)
        if kind == "words":
            out.append(f"Δ and Δ_learned give different words for {name}")
        elif kind == "direction":
            out.append(
                f"Δ and Δ_learned point in opposite directions for {name} (mean d "
                f"{100 * p.mean:+.1f} points on Δ, {100 * q.mean:+.1f} on Δ_learned): neither "
                "direction holds on both measures"
            )
    return out


def _small_test(stats: dict[str, Any]) -> str | None:
    """The test set's smallest class, when it is too small for per-class claims."""
    fewest = fewest_test_images(stats)
    if fewest is None or fewest >= PER_CLASS_TEST_MIN:
        return None
    return (
        f"the test set has {fewest} images in its smallest class (one image is "
        f"{100 / max(fewest, 1):.0f} points of that class's accuracy), too few for per-class claims"
    )


def _data_used(stats: dict[str, Any]) -> list[str]:
    """What of the data the finding rests on: the classes kept (and why others were not) and
    each arm's share of the train pool, so a 1.7%-of-the-pool study does not read as all of it."""
    usage = stats.get("usage")
    if not usage:
        return []
    arms = usage["arms"]
    n = {a["n"] for a in arms.values()}
    shares = ", ".join(f"{name} {a['share_of_pool']:.1%}" for name, a in arms.items())
    size = f"{n.pop():,} images per arm" if len(n) == 1 else "arms of unequal size"
    text = (
        f"It rests on {usage['classes_kept']} of {usage['classes_listed']} listed classes and "
        f"{size} ({shares} of the {usage['pool']:,}-image train pool)"
    )
    dropped = usage.get("dropped") or []
    if dropped:
        shown = "; ".join(f"'{d['class']}' ({d['why']})" for d in dropped[:5])
        more = f"; and {len(dropped) - 5} more" if len(dropped) > 5 else ""
        text += f"; classes left out: {shown}{more}"
    return [text + "."]


def _one_class_tier(stats: dict[str, Any]) -> str | None:
    """A head (or tail) of one class: its 'tier accuracy' is one class's accuracy."""
    members = (stats.get("tiers") or {}).get("members") or {}
    alone = [(tier, names[0]) for tier, names in members.items() if len(names) == 1]
    if not alone:
        return None
    said = ", ".join(f"the {tier} tier is one class ('{name}')" for tier, name in alone)
    return f"{said}: its accuracy is that class's, not a tier's"


def _few_test_groups(stats: dict[str, Any]) -> str | None:
    """data.group_by: classes whose test set is a few tracks (plants, animals)."""
    per_seed = stats.get("item_groups_per_class") or {}
    if not per_seed:
        return None
    test = per_seed[min(per_seed, key=int)].get("test", [])
    few = sum(0 < n < GROUPS_PER_TEST_CLASS for n in test)
    if not few:
        return None
    return (
        f"{few} of {len(test)} classes have a test set of fewer than {GROUPS_PER_TEST_CLASS} "
        "data.group_by groups (their accuracy measures a few tracks, plants or animals; see "
        "data stats)"
    )

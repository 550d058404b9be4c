"""The verdict: paired per-seed differences of the relative gap, with hand-computed numbers."""

import math

import pandas as pd
import pytest

from ssl_robustness.report import verdict as V
from ssl_robustness.report import verdict_words as W

T975_2 = 4.302652729749464  # scipy.stats.t.ppf(0.975, 2)


def gap_rows(
    scenario,
    method,
    rel_gaps,
    *,
    evaluation="linear-balanced",
    comparison="pretraining",
    subset="exp-r0.1",
    metric="top1",
    seeds=None,
):
    seeds = seeds if seeds is not None else range(len(rel_gaps))
    return [
        {
            "scenario": scenario,
            "method": method,
            "evaluation": evaluation,
            "comparison": comparison,
            "seed": s,
            "subset": subset,
            "level": 0.1,
            f"{metric}_gap": g / 2,
            f"{metric}_rel_gap": g,
        }
        for s, g in zip(seeds, rel_gaps, strict=True)
    ]


def result_rows(gap_runs, collapsed=()):
    """results.csv rows for both arms of every gap row; `collapsed` names (method, subset, seed)."""
    rows = []
    for r in gap_runs.itertuples():
        for subset, balanced in (("balanced", True), (r.subset, False)):
            rows.append(
                {
                    "representation": f"{r.method}_{subset}_s{r.seed}",
                    "scenario": r.scenario,
                    "method": r.method,
                    "subset": subset,
                    "balanced": balanced,
                    "seed": r.seed,
                    "evaluation": r.evaluation,
                    "comparison": r.comparison,
                    "status": "ok",
                    "collapsed": (r.method, subset, r.seed) in collapsed,
                }
            )
    return pd.DataFrame(rows).drop_duplicates("representation")


def with_failure(results, method, subset, seed, scenario="SSL-in-domain"):
    """results.csv plus the failure row of one representation (no accuracy)."""
    failed = {
        "representation": f"{method}_{subset}_s{seed}",
        "scenario": scenario,
        "method": method,
        "subset": subset,
        "seed": seed,
        "status": "failed",
    }
    return pd.concat([results, pd.DataFrame([failed])], ignore_index=True)


@pytest.fixture
def three_seeds():
    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.02, 0.04, 0.03])
        + gap_rows("SL", "supervised", [0.08, 0.07, 0.09])
        + gap_rows("SL", "supervised-balanced_softmax", [0.03, 0.05, 0.01])
    )
    return runs, result_rows(runs)


T_FAMILY_2 = 6.205346816570703  # scipy.stats.t.ppf(1 - 0.05 / 2 / 2, 2): Bonferroni over 2 tests
P_T5_DF2 = 0.037749551350623745  # 2 * scipy.stats.t.sf(5, 2): a paired t of -5 on 3 seeds


def test_the_registered_comparator_not_the_least_losing_variant_is_confirmatory(three_seeds):
    """The plain baseline is the default comparator; the variant that lost least (here
    balanced softmax) is chosen after the fact, so its test is exploratory."""
    runs, results = three_seeds
    [v] = V.verdicts(runs, results)
    assert (v.evaluation, v.comparison, v.subset, v.metric) == (
        "linear-balanced",
        "pretraining",
        "exp-r0.1",
        "top1",
    )
    assert v.confirmatory
    by_sl = {p.sl_method: p for p in v.pairs}
    assert set(by_sl) == {"supervised", "supervised-balanced_softmax"}
    # d = [-0.06, -0.03, -0.06]: mean -0.05, sd sqrt(3e-4), se 0.01, t = -5, p = 0.0377
    p = by_sl["supervised"]
    assert p.seeds == (0, 1, 2) and p.family == "confirmatory" and p.family_size == 1
    assert v.comparator == "supervised"
    assert p.mean == pytest.approx(-0.05)
    assert p.p == pytest.approx(P_T5_DF2)
    assert p.p_adjusted == pytest.approx(P_T5_DF2)  # a family of one
    assert p.low == pytest.approx(-0.05 - T975_2 * 0.01)
    assert p.high == pytest.approx(-0.05 + T975_2 * 0.01)
    assert p.words == "loses less"
    assert (p.ssl_rel_gap, p.sl_rel_gap) == (pytest.approx(0.03), pytest.approx(0.08))
    # d = [-0.01, -0.01, 0.02]: mean 0 -> p = 1; exploratory, Holm over the 2 tests made
    q = by_sl["supervised-balanced_softmax"]
    assert q.family == "exploratory"
    assert q.mean == pytest.approx(0.0, abs=1e-12)
    assert q.p == pytest.approx(1.0) and q.p_adjusted == pytest.approx(1.0)
    assert q.words == "no detectable difference"
    assert v.best_sl == "supervised-balanced_softmax"
    assert v.sl_rel_gaps == {
        "supervised": pytest.approx(0.08),
        "supervised-balanced_softmax": pytest.approx(0.03),
    }
    text = "\n".join(W.verdict_sentences(v))
    assert text.startswith("Confirmatory comparison: linear-balanced, pretraining gap")
    assert "registered SL comparator: supervised (Δ 8.0%)" in text
    assert (
        "the SL variant that lost least, chosen after the fact and so exploratory: "
        "supervised-balanced_softmax (Δ 3.0%)" in text
    )
    assert (
        "simclr (SSL-in-domain) loses less than supervised: d = -5.0 "
        "points of Δ, family-wise 95% CI [-9.3, -0.7] (Bonferroni over 1 test), "
        "Holm-adjusted p = 0.038 (unadjusted 0.038), over 3 seeds (Δ 3.0% vs 8.0%)." in text
    )
    assert "overlap" not in text


def test_a_named_comparator_is_tested_and_a_family_of_several_ssl_methods_is_holm(three_seeds):
    runs, _ = three_seeds
    runs = pd.concat([runs, pd.DataFrame(gap_rows("SSL-in-domain", "mocov2", [0.03, 0.05, 0.01]))])
    conf = V.Confirmatory(sl_comparator="supervised-balanced_softmax")
    [v] = V.verdicts(runs, result_rows(runs), confirmatory=conf)
    family = [p for p in v.pairs if p.family == "confirmatory"]
    assert {p.sl_method for p in family} == {"supervised-balanced_softmax"}
    assert {p.ssl_method for p in family} == {"simclr", "mocov2"} and family[0].family_size == 2
    # against the plain baseline: d = -0.05, p = 0.038, exploratory now
    plain = next(p for p in v.pairs if p.sl_method == "supervised" and p.ssl_method == "simclr")
    assert plain.family == "exploratory"
    # the two family members both have mean d = 0 -> p = 1, Holm 1
    assert all(p.p_adjusted == pytest.approx(1.0) for p in family)


def test_against_every_sl_variant_is_an_intersection_union_test(three_seeds):
    """SSL loses less than every variant only if it beats each; the combined p is the largest
    and the words name the variant it did not beat."""
    runs, results = three_seeds
    [v] = V.verdicts(runs, results, confirmatory=V.Confirmatory(against="every"))
    [iut] = [p for p in v.pairs if p.family == "confirmatory"]
    assert iut.sl_method == V.EVERY_SL and iut.family_size == 1
    # against supervised d < 0 (p 0.038); against balanced softmax d = 0 (p 1): signs differ
    assert iut.p == pytest.approx(1.0)
    assert iut.words == "no detectable difference"
    assert "shown against supervised-balanced_softmax, the variant it came nearest" in iut.note
    # a difference that changes sign across the variants has no single interval
    flip = runs.copy()
    flip.loc[flip["method"] == "supervised-balanced_softmax", "top1_rel_gap"] = 0.0
    [w] = V.verdicts(flip, results, confirmatory=V.Confirmatory(against="every"))
    [iut_flip] = [p for p in w.pairs if p.family == "confirmatory"]
    assert "changes sign across the SL variants" in iut_flip.note
    assert math.isnan(iut_flip.low) and iut_flip.words == "no detectable difference"
    # a study where SSL beats both: combined p is the larger of the two
    runs2 = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.02, 0.04, 0.03])
        + gap_rows("SL", "supervised", [0.08, 0.07, 0.09])
        + gap_rows("SL", "supervised-cb", [0.06, 0.08, 0.06])
    )
    [v2] = V.verdicts(runs2, result_rows(runs2), confirmatory=V.Confirmatory(against="every"))
    parts = {p.sl_method: p for p in v2.pairs if p.family == "exploratory"}
    [iut2] = [p for p in v2.pairs if p.family == "confirmatory"]
    assert iut2.p == pytest.approx(max(parts["supervised"].p, parts["supervised-cb"].p))
    assert iut2.words == "loses less"
    weakest = max(parts.values(), key=lambda p: p.p).sl_method
    assert iut2.note.startswith("it must beat each of supervised, supervised-cb: ")
    assert f"shown against {weakest}, the variant it came nearest to not beating" in iut2.note
    assert "every SL variant's" not in W.paired_sentence(iut2)  # no one variant's accuracies


def test_every_variant_equivalence_needs_equivalence_to_each_and_failures_stay_local():
    """Review: the every-variant TOST is the largest over the variants (not the closest one's),
    and another SSL method's failed arm does not make this one's test inconclusive."""
    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.030, 0.031, 0.029, 0.030])
        + gap_rows("SSL-in-domain", "mocov2", [0.05, 0.06, 0.04], seeds=[0, 1, 2])
        + gap_rows("SL", "supervised", [0.030, 0.030, 0.030, 0.031])
        + gap_rows("SL", "supervised-ldam_drw", [0.110, 0.115, 0.12, 0.118])
    )
    results = result_rows(runs)
    results = with_failure(results, "mocov2", "exp-r0.1", 3)
    conf = V.Confirmatory(against="every", equivalence_margin=2.0, seeds=(0, 1, 2, 3))
    [v] = V.verdicts(runs, results, confirmatory=conf)
    iut = {p.ssl_method: p for p in v.pairs if p.family == "confirmatory"}
    assert iut["mocov2"].words == "not conclusive"
    assert iut["mocov2"].note == "mocov2's exp-r0.1 arm failed in seed 3"
    assert iut["simclr"].words != "not conclusive"
    # equivalent to supervised, 8 points from ldam_drw: not equivalent to every variant
    assert not V.equivalent(iut["simclr"])


def test_a_registered_seed_missing_without_a_failure_record_is_not_conclusive(three_seeds):
    runs, results = three_seeds
    runs = runs[~((runs["method"] == "simclr") & (runs["seed"] == 2))]
    conf = V.Confirmatory(seeds=(0, 1, 2))
    [v] = V.verdicts(runs, results, confirmatory=conf)
    p = next(p for p in v.pairs if p.sl_method == "supervised")
    assert p.words == "not conclusive"
    assert p.note == "registered seed 2 has no paired result for simclr and supervised"


def test_a_failure_in_another_imbalanced_arm_leaves_this_arms_test_alone(three_seeds):
    runs, results = three_seeds
    results = with_failure(results, "simclr", "exp-r0.01", 2)
    [v] = V.verdicts(runs, results)
    p = next(p for p in v.pairs if p.sl_method == "supervised")
    assert p.words == "loses less"


def test_the_same_test_outside_the_confirmatory_comparison_is_exploratory(three_seeds):
    runs, results = three_seeds
    [v] = V.verdicts(runs, results, confirmatory=("knn-k20", "pretraining"))
    p = next(p for p in v.pairs if p.sl_method == "supervised")
    assert not v.confirmatory and p.family == "exploratory"
    assert p.low == pytest.approx(-0.05 - T975_2 * 0.01)  # unadjusted 95%
    assert p.words == "loses less"  # unadjusted p = 0.038 < 0.05 ...
    # ... but the words never appear without "exploratory", and Holm over all 2 tests
    sentence = W.paired_sentence(p)
    assert sentence.startswith("exploratory: simclr (SSL-in-domain) loses less than supervised")
    assert "p = 0.038, Holm over all 2 tests made p = 0.075" in sentence
    lead = W.verdict_sentences(v)[0]
    assert lead.startswith("Exploratory comparison (not the confirmatory one")


def test_interval_above_zero_loses_more():
    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simsiam", [0.10, 0.12, 0.11])
        + gap_rows("SL", "supervised", [0.02, 0.03, 0.04])
    )
    [v] = V.verdicts(runs, result_rows(runs))
    [p] = v.pairs
    assert p.mean == pytest.approx(0.08)
    assert p.low == pytest.approx(0.08 - T975_2 * 0.01 / math.sqrt(3))
    assert p.words == "loses more"


def test_one_seed_has_no_interval():
    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.02]) + gap_rows("SL", "supervised", [0.08])
    )
    [v] = V.verdicts(runs, result_rows(runs))
    [p] = v.pairs
    assert p.seeds == (0,)
    assert p.mean == pytest.approx(-0.06)
    assert math.isnan(p.low) and math.isnan(p.high)
    assert p.words == "one seed, no interval"
    text = W.paired_sentence(p)
    assert "one seed, no interval" in text and "overlap" not in text and "CI" not in text


def test_pairs_only_seeds_both_have():
    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.02, 0.04], seeds=[0, 1])
        + gap_rows("SL", "supervised", [0.08, 0.07], seeds=[1, 2])
    )
    [v] = V.verdicts(runs, result_rows(runs))
    [p] = v.pairs
    assert p.seeds == (1,) and p.mean == pytest.approx(0.04 - 0.08)
    assert p.words == "one seed, no interval"


def test_a_collapsed_imbalanced_arm_is_an_outcome_kept_as_measured(three_seeds):
    """Collapse under imbalance is what the comparison measures: dropping that seed would test
    on the seeds that held up."""
    runs, _ = three_seeds
    results = result_rows(runs, collapsed={("simclr", "exp-r0.1", 2)})
    [v] = V.verdicts(runs, results)
    p = next(p for p in v.pairs if p.sl_method == "supervised")
    assert p.seeds == (0, 1, 2) and p.family == "confirmatory"
    assert p.mean == pytest.approx(-0.05)
    assert v.left_out == () and v.collapsed == ("simclr_exp-r0.1_s2",)
    assert any("kept in their gaps as measured" in s for s in W.verdict_sentences(v))


def test_a_failed_imbalanced_arm_makes_the_confirmatory_words_not_conclusive(three_seeds):
    runs, results = three_seeds
    runs = runs[~((runs["method"] == "simclr") & (runs["seed"] == 2))]
    results = results[results["representation"] != "simclr_exp-r0.1_s2"]
    results = with_failure(results, "simclr", "exp-r0.1", 2)
    [v] = V.verdicts(runs, results)
    p = next(p for p in v.pairs if p.sl_method == "supervised")
    assert p.family == "confirmatory" and p.words == "not conclusive"
    assert p.note == "simclr's exp-r0.1 arm failed in seed 2"
    assert "not conclusive: simclr's exp-r0.1 arm failed in seed 2" in W.paired_sentence(p)
    # the same pair outside the confirmatory comparison is an ordinary test on 2 seeds
    [w] = V.verdicts(runs, results, confirmatory=("knn-k20", "pretraining"))
    q = next(p for p in w.pairs if p.sl_method == "supervised")
    assert q.seeds == (0, 1) and q.words != "not conclusive"


def test_collapsed_balanced_arm_makes_a_method_unfit_for_the_family():
    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.02, 0.04])
        + gap_rows("SSL-in-domain", "simclr", [0.05, 0.06], subset="exp-r0.01")
        + gap_rows("SL", "supervised", [0.08, 0.07])
        + gap_rows("SL", "supervised", [0.1, 0.2], subset="exp-r0.01")
    )
    results = result_rows(runs, collapsed={("supervised", "balanced", 0)})
    vs = V.verdicts(runs, results)
    assert [v.subset for v in vs] == ["exp-r0.01", "exp-r0.1"]
    for v in vs:
        assert v.pairs[0].seeds == (0, 1)  # kept as measured
        assert v.pairs[0].family == "exploratory"  # the comparator learned ~nothing balanced
        assert v.near_floor == ("supervised (its balanced arm collapsed in seed 0)",)
        assert v.collapsed == ("supervised_balanced_s0",)


def test_failed_sl_variant_is_named_and_has_no_pairs(three_seeds):
    runs, results = three_seeds
    runs = runs[runs["method"] != "supervised-balanced_softmax"]
    failed = pd.DataFrame(
        [
            {
                "representation": "supervised-balanced_softmax_exp-r0.1_s0",
                "scenario": "SL",
                "method": "supervised-balanced_softmax",
                "subset": "exp-r0.1",
                "seed": 0,
                "status": "failed",
                "error": "RuntimeError: boom",
            }
        ]
    )
    results = pd.concat([results[results["method"] != "supervised-balanced_softmax"], failed])
    [v] = V.verdicts(runs, results)
    by_sl = {p.sl_method: p for p in v.pairs}
    assert by_sl["supervised-balanced_softmax"].words == "no seed to compare"
    assert by_sl["supervised"].words == "loses less"
    assert v.best_sl == "supervised"
    assert v.left_out == ("supervised-balanced_softmax_exp-r0.1_s0 (failed)",)


def test_metric_follows_test_balance_and_reads_its_own_column():
    assert V.verdict_metric({"test_balanced": True})[0] == "top1"
    metric, why = V.verdict_metric({"test_balanced": False})
    assert metric == "balanced_accuracy" and "not balanced" in why
    # an older run without the flag: equal per-class test counts mean balanced
    assert V.verdict_metric({"splits": {"test": {"per_class": [5, 5, 4]}}})[0] == (
        "balanced_accuracy"
    )
    assert V.verdict_metric({})[0] == "top1"
    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.02, 0.04, 0.03], metric="balanced_accuracy")
        + gap_rows("SL", "supervised", [0.08, 0.07, 0.09], metric="balanced_accuracy")
    )
    assert V.verdicts(runs, result_rows(runs), metric="top1") == []
    [v] = V.verdicts(runs, result_rows(runs), metric="balanced_accuracy")
    assert v.pairs[0].mean == pytest.approx(-0.05)
    assert "relative gap Δ in balanced accuracy" in W.verdict_sentences(v)[0]


def test_headline_first_and_cross_scenario_ignored(three_seeds):
    runs, results = three_seeds
    other = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.1, 0.1, 0.1], evaluation="knn-k20")
        + gap_rows("SL", "supervised", [0.1, 0.2, 0.3], evaluation="knn-k20")
        + gap_rows(
            "SSL-in-domain",
            "simclr",
            [0.1],
            evaluation="finetune-imbalanced",
            comparison="cross-scenario",
        )
        + gap_rows(
            "SSL-ImageNet",
            "moco-in1k",
            [0.01, 0.02, 0.03],
            evaluation="linear-own",
            comparison="fixed-representation",
        )
    )
    runs = pd.concat([other, runs], ignore_index=True)
    vs = V.verdicts(runs, result_rows(runs))
    assert [(v.evaluation, v.comparison) for v in vs] == [
        ("linear-balanced", "pretraining"),
        ("knn-k20", "pretraining"),
        ("linear-own", "fixed-representation"),
    ]
    fixed = vs[-1]
    assert fixed.best_sl is None and fixed.pairs == ()
    lines = W.render(vs, "top-1 accuracy (the test split is balanced)")
    assert lines[0] == "The verdict uses top-1 accuracy (the test split is balanced)."
    assert lines[1].startswith(
        "Confirmatory comparison: linear-balanced, pretraining gap (balanced vs exp-r0.1)"
    )
    assert any("no SL variant has a usable gap here" in line for line in lines)
    assert W.render([]) == [
        "No SSL method has a balanced-vs-imbalanced gap, so there is no verdict."
    ]


def test_study_without_sl_gives_each_ssl_methods_own_gap_and_says_it_cannot_compare():
    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simsiam", [0.02, 0.04, 0.03])
        + gap_rows("SSL-in-domain", "simsiam-sam", [0.05])
    )
    [v] = V.verdicts(runs, result_rows(runs))
    assert v.best_sl is None and v.pairs == ()
    seeds, mean, low, high = v.ssl_rel_gaps["simsiam (SSL-in-domain)"]
    half = T975_2 * 0.01 / math.sqrt(3)  # std of (0.02, 0.04, 0.03) is 0.01
    assert (seeds, mean) == (3, pytest.approx(0.03))
    assert (low, high) == (pytest.approx(0.03 - half), pytest.approx(0.03 + half))
    [text] = W.verdict_sentences(v)
    assert "this study trained no SL arm, so it cannot say whether SSL loses less than SL" in text
    assert "not a test of a difference" in text
    assert f"simsiam (SSL-in-domain) 3.0%, 95% CI [{100 * (0.03 - half):.1f}%" in text
    assert "simsiam-sam (SSL-in-domain) 5.0% (one seed, no interval)" in text

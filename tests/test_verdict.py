"""The verdict: paired per-seed differences of the relative gap, with hand-computed numbers."""

import math

import pandas as pd
import pytest

from ssl_robustness.report import verdict as V

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


def test_paired_t_test_against_every_sl_variant_in_one_holm_family(three_seeds):
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
    assert p.seeds == (0, 1, 2) and p.family == "confirmatory" and p.family_size == 2
    assert p.mean == pytest.approx(-0.05)
    assert p.p == pytest.approx(P_T5_DF2)
    # Holm over 2 tests: the smaller p doubled; the other p is 1 -> stays 1
    assert p.p_adjusted == pytest.approx(2 * P_T5_DF2)
    assert p.low == pytest.approx(-0.05 - T_FAMILY_2 * 0.01)
    assert p.high == pytest.approx(-0.05 + T_FAMILY_2 * 0.01)
    # unadjusted it would read "loses less"; in its family of two it does not
    assert p.words == "no detectable difference"
    assert (p.ssl_rel_gap, p.sl_rel_gap) == (pytest.approx(0.03), pytest.approx(0.08))
    # d = [-0.01, -0.01, 0.02]: mean 0 -> p = 1
    q = by_sl["supervised-balanced_softmax"]
    assert q.mean == pytest.approx(0.0, abs=1e-12)
    assert q.p == pytest.approx(1.0) and q.p_adjusted == pytest.approx(1.0)
    assert q.words == "no detectable difference"
    assert v.best_sl == "supervised-balanced_softmax"
    assert v.sl_rel_gaps == {
        "supervised": pytest.approx(0.08),
        "supervised-balanced_softmax": pytest.approx(0.03),
    }
    text = "\n".join(V.verdict_sentences(v))
    assert text.startswith("Confirmatory comparison: linear-balanced, pretraining gap")
    assert "best SL variant: supervised-balanced_softmax (Δ 3.0%)" in text
    assert (
        "simclr (SSL-in-domain) shows no detectable difference from supervised: d = -5.0 "
        "points of Δ, family-wise 95% CI [-11.2, +1.2] (Bonferroni over 2 tests), "
        "Holm-adjusted p = 0.075 (unadjusted 0.038), over 3 seeds (Δ 3.0% vs 8.0%)." in text
    )
    assert "overlap" not in text


def test_the_same_test_outside_the_confirmatory_comparison_is_exploratory(three_seeds):
    runs, results = three_seeds
    [v] = V.verdicts(runs, results, confirmatory=("knn-k20", "pretraining"))
    p = next(p for p in v.pairs if p.sl_method == "supervised")
    assert not v.confirmatory and p.family == "exploratory"
    assert p.low == pytest.approx(-0.05 - T975_2 * 0.01)  # unadjusted 95%
    assert p.words == "loses less"  # unadjusted p = 0.038 < 0.05 ...
    # ... but the words never appear without "exploratory", and Holm over all 2 tests
    sentence = V.paired_sentence(p)
    assert sentence.startswith("exploratory: simclr (SSL-in-domain) loses less than supervised")
    assert "p = 0.038, Holm over all 2 tests made p = 0.075" in sentence
    lead = V.verdict_sentences(v)[0]
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
    text = V.paired_sentence(p)
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


def test_collapsed_representation_drops_its_seed_pairs_and_is_named(three_seeds):
    runs, _ = three_seeds
    results = result_rows(runs, collapsed={("simclr", "exp-r0.1", 2)})
    [v] = V.verdicts(runs, results)
    p = next(p for p in v.pairs if p.sl_method == "supervised")
    assert p.seeds == (0, 1)
    # d = [-0.06, -0.03]: mean -0.045, sd 0.03/sqrt(2), se 0.015; Bonferroni over 2 tests
    assert p.mean == pytest.approx(-0.045)
    assert p.high == pytest.approx(-0.045 + 25.451699579357357 * 0.015)  # t(1-0.0125, 1)
    assert p.words == "too few seeds for words"
    assert v.left_out == ("simclr_exp-r0.1_s2 (collapsed)",)
    assert "Left out (their seed pairs dropped): simclr_exp-r0.1_s2 (collapsed)." in (
        V.verdict_sentences(v)
    )


def test_collapsed_balanced_arm_spoils_every_subset_of_its_seed():
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
        assert v.pairs[0].seeds == (1,)
        assert v.left_out == ("supervised_balanced_s0 (collapsed)",)
        assert v.sl_rel_gaps["supervised"] == pytest.approx({"exp-r0.1": 0.07}.get(v.subset, 0.2))


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
    assert "relative gap Δ in balanced accuracy" in V.verdict_sentences(v)[0]


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
    lines = V.render(vs, "top-1 accuracy (the test split is balanced)")
    assert lines[0] == "The verdict uses top-1 accuracy (the test split is balanced)."
    assert lines[1].startswith(
        "Confirmatory comparison: linear-balanced, pretraining gap (balanced vs exp-r0.1)"
    )
    assert any("no SL variant has a usable gap here" in line for line in lines)
    assert V.render([]) == [
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
    [text] = V.verdict_sentences(v)
    assert "this study trained no SL arm, so it cannot say whether SSL loses less than SL" in text
    assert "not a test of a difference" in text
    assert f"simsiam (SSL-in-domain) 3.0%, 95% CI [{100 * (0.03 - half):.1f}%" in text
    assert "simsiam-sam (SSL-in-domain) 5.0% (one seed, no interval)" in text

"""The verdict cannot lean toward the hypothesis: the gap of what was learned beside Δ, arms'
accuracies in every line, near-floor methods out of the confirmatory family, no words from
two seeds or from zero variance, and every test's numbers in one table."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from test_verdict import gap_rows, result_rows

from ssl_robustness.report import verdict as V
from ssl_robustness.report import verdict_words as W
from ssl_robustness.report.tables import gap_tables, with_floor


def _results(rows):
    base = {"status": "ok", "collapsed": False, "matched": True, "n": 100}
    out = []
    for r in rows:
        row = {**base, **r}
        for m in ("top5", "macro_f1", "head", "medium", "tail"):
            row.setdefault(m, row["top1"])
        row.setdefault("balanced_accuracy", row["top1"])
        out.append(row)
    return with_floor(pd.DataFrame(out))


def _arm(scenario, method, subset, seed, top1):
    return {
        "representation": f"{method}_{subset}_s{seed}",
        "scenario": scenario,
        "method": method,
        "subset": subset,
        "balanced": subset == "balanced",
        "level": 1.0 if subset == "balanced" else 0.1,
        "seed": seed,
        "evaluation": "linear-balanced",
        "comparison": "pretraining",
        "top1": top1,
    }


def _floor(seed, top1):
    row = _arm("random-init", "random-init", "-", seed, top1)
    return {**row, "representation": f"random-init_none_s{seed}", "balanced": None}


def test_learned_gap_divides_by_what_was_learned_beyond_the_floor():
    rows = [_floor(0, 0.30)]
    rows += [_arm("SL", "supervised", "balanced", 0, 0.60), _arm("SL", "supervised", "r", 0, 0.54)]
    rows += [_arm("SSL-in-domain", "simclr", "balanced", 0, 0.40)]
    rows += [_arm("SSL-in-domain", "simclr", "r", 0, 0.38)]
    runs, _ = gap_tables(_results(rows), "balanced")
    by = runs.set_index("method")
    # SL: Δ = 0.06/0.60 = 10%, Δ_learned = 0.06/0.30 = 20%
    assert by.loc["supervised", "top1_rel_gap"] == pytest.approx(0.10)
    assert by.loc["supervised", "top1_learned_rel_gap"] == pytest.approx(0.20)
    # SimCLR: Δ = 0.02/0.40 = 5% looks half SL's; Δ_learned = 0.02/0.10 = 20%, the same
    assert by.loc["simclr", "top1_rel_gap"] == pytest.approx(0.05)
    assert by.loc["simclr", "top1_learned_rel_gap"] == pytest.approx(0.20)
    assert by.loc["simclr", "top1_balanced_arm"] == pytest.approx(0.40)
    assert by.loc["simclr", "top1_imbalanced_arm"] == pytest.approx(0.38)
    assert by.loc["simclr", "top1_floor"] == pytest.approx(0.30)


def _study(ssl_balanced, ssl_imbalanced, sl_balanced, sl_imbalanced, floor=0.30):
    rows = []
    for s in range(len(ssl_balanced)):
        rows.append(_floor(s, floor))
        rows.append(_arm("SL", "supervised", "balanced", s, sl_balanced[s]))
        rows.append(_arm("SL", "supervised", "exp-r0.1", s, sl_imbalanced[s]))
        rows.append(_arm("SSL-in-domain", "simclr", "balanced", s, ssl_balanced[s]))
        rows.append(_arm("SSL-in-domain", "simclr", "exp-r0.1", s, ssl_imbalanced[s]))
    results = _results(rows)
    runs, _ = gap_tables(results, "balanced")
    return runs, results


def test_delta_and_learned_delta_disagree_and_the_verdict_says_so():
    # SSL loses 2 points of 40 (Δ 5%), SL 6 of 60 (Δ 10%): by Δ SSL loses less.
    # Over a floor of 30, SSL lost 2 of 10 learned (20%), SL 6 of 30 (20%): no difference.
    runs, results = _study(
        [0.40, 0.41, 0.39, 0.40],
        [0.38, 0.39, 0.37, 0.38],
        [0.60, 0.61, 0.59, 0.60],
        [0.54, 0.545, 0.535, 0.54],
    )
    [v] = V.verdicts(runs, results)
    [delta] = v.pairs
    [learned] = v.learned_pairs
    assert delta.family == "confirmatory" and learned.family == "sensitivity"
    assert delta.words == "loses less"
    assert learned.words != "loses less"
    text = "\n".join(W.verdict_sentences(v))
    assert "Δ and Δ_learned disagree for simclr vs supervised" in text
    # both arms' absolute accuracies and the absolute loss in points beside Δ
    assert (
        "top-1 balanced → imbalanced arm 40.0% → 38.0% (-2.0 points) vs supervised's "
        "60.0% → 54.0% (-6.0 points)" in text
    )
    table = V.tests_table([v])
    assert set(table["measure"]) == {"rel_gap", "learned_rel_gap"}
    row = table[table["measure"] == "rel_gap"].iloc[0]
    assert row["p_adjusted"] == pytest.approx(row["p"])  # a family of one
    assert row["words"] == "loses less" and row["family_size"] == 1


def test_a_balanced_arm_near_the_floor_is_not_fit_for_the_confirmatory_family():
    # SimCLR's balanced arm sits 2.5 points over a floor of 30: it learned ~nothing to lose
    runs, results = _study(
        [0.325, 0.33, 0.32], [0.31, 0.31, 0.31], [0.60, 0.61, 0.59], [0.50, 0.52, 0.49]
    )
    [v] = V.verdicts(runs, results)
    [p] = v.pairs
    assert p.family == "exploratory"
    assert v.near_floor == ("simclr (+2.5 points over the random-init floor in its balanced arm)",)
    text = "\n".join(W.verdict_sentences(v))
    assert "Not fit for the confirmatory family, judged on the balanced arm alone" in text
    assert "exploratory: simclr" in text


def test_an_imbalanced_arm_at_the_floor_stays_in_the_family_and_loses_more():
    """Issue 30: SSL learns 20 points over the floor when balanced and falls to the floor
    under imbalance in every seed: the strongest "SSL loses more", never a removal."""
    from ssl_robustness.report.bottom_line import bottom_line

    runs, results = _study(
        [0.50, 0.51, 0.49], [0.30, 0.30, 0.30], [0.60, 0.61, 0.59], [0.57, 0.575, 0.565]
    )
    [v] = V.verdicts(runs, results)
    [p] = v.pairs
    assert v.near_floor == ()
    assert p.family == "confirmatory" and p.words == "loses more"
    text = bottom_line([v], [v], V.HEADLINE, results, {})
    assert "simclr loses more than supervised" in text


def test_the_three_point_rule_is_decided_on_rounded_margins():
    """A balanced arm exactly 3.0 points over its floor is fit, whatever the float noise of
    0.33 - 0.30 (0.030000000000000027); 2.9 points is not."""
    runs, results = _study([0.33] * 3, [0.32, 0.31, 0.32], [0.60] * 3, [0.55, 0.54, 0.56])
    [v] = V.verdicts(runs, results)
    assert v.near_floor == ()
    runs, results = _study([0.329] * 3, [0.32, 0.31, 0.32], [0.60] * 3, [0.55, 0.54, 0.56])
    [w] = V.verdicts(runs, results)
    assert w.near_floor and "+2.9 points" in w.near_floor[0]
    runs, results = _study([0.3299999] * 3, [0.32, 0.31, 0.32], [0.60] * 3, [0.55, 0.54, 0.56])
    [x] = V.verdicts(runs, results)
    assert x.near_floor == ()  # shown as 3.0 points: fit


def test_no_detectable_difference_says_what_the_test_could_have_seen():
    """Beside "no detectable difference": the minimum detectable effect at the family's
    strictest Holm threshold from this study's spread and its upper bound (non-central t)."""
    from ssl_robustness.report.power import min_detectable_effect, sd_upper

    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.02, 0.06, 0.01, 0.05, 0.03])
        + gap_rows("SL", "supervised", [0.04, 0.03, 0.05, 0.02, 0.04])
    )
    [v] = V.verdicts(runs, result_rows(runs))
    [p] = v.pairs
    assert p.words == "no detectable difference"
    d = [-0.02, 0.03, -0.04, 0.03, -0.01]
    sd = pd.Series(d).std()
    assert p.mde == pytest.approx(min_detectable_effect(5, sd, 0.05))
    assert p.mde_upper == pytest.approx(min_detectable_effect(5, sd_upper(sd, 5), 0.05))
    assert p.mde_upper > p.mde > abs(p.mean)
    text = W.paired_sentence(p)
    assert f"at least {100 * p.mde:.1f} points of Δ" in text and "80% power" in text
    assert "observed power" not in text


def test_equivalence_is_claimed_only_where_the_registered_tost_rejects():
    from ssl_robustness.report.power import tost_p

    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.031, 0.029, 0.030, 0.032, 0.028])
        + gap_rows("SL", "supervised", [0.030, 0.030, 0.031, 0.030, 0.029])
    )
    results = result_rows(runs)
    [plain] = V.verdicts(runs, results)
    assert "equivalen" not in W.paired_sentence(plain.pairs[0])  # no margin, no words
    [v] = V.verdicts(runs, results, confirmatory=V.Confirmatory(equivalence_margin=1.0))
    [p] = v.pairs
    d = [0.001, -0.001, -0.001, 0.002, -0.001]
    assert p.p_equivalence == pytest.approx(tost_p(sum(d) / 5, pd.Series(d).std(), 5, 0.01))
    assert V.equivalent(p) and "equivalent within ±1.0 points of Δ" in W.paired_sentence(p)
    [w] = V.verdicts(runs, results, confirmatory=V.Confirmatory(equivalence_margin=0.05))
    assert not V.equivalent(w.pairs[0])
    assert "equivalence within ±0.1 points of Δ is not shown" in W.paired_sentence(w.pairs[0])


def test_two_seeds_give_an_interval_but_no_words():
    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.01, 0.02])
        + gap_rows("SL", "supervised", [0.3, 0.32])
    )
    [v] = V.verdicts(runs, result_rows(runs))
    [p] = v.pairs
    assert p.p < 0.05  # a tiny spread: "significant" on one degree of freedom
    assert p.words == "too few seeds for words"
    text = W.paired_sentence(p)
    assert "too few seeds for words (2 paired seeds, at least 3 needed)" in text
    assert "CI [" in text and "loses less" not in text


def test_a_zero_variance_difference_is_flagged_not_shown_as_plus_minus_zero():
    runs = pd.DataFrame(
        gap_rows("SSL-in-domain", "simclr", [0.01, 0.02, 0.03])
        + gap_rows("SL", "supervised", [0.11, 0.12, 0.13])
    )
    [v] = V.verdicts(runs, result_rows(runs))
    [p] = v.pairs
    assert math.isnan(p.p) and p.words == "zero variance over seeds, no test"
    text = W.paired_sentence(p)
    assert "zero variance over seeds" in text and "CI" not in text


def test_knn_with_k_above_the_probe_sets_images_per_class_is_named():
    from types import SimpleNamespace

    from ssl_robustness.report.headline import knn_caveats

    run = SimpleNamespace(
        stats={"probe_balanced": {"per_class": 78}},
        results=pd.DataFrame({"evaluation": ["knn-k20", "knn-k200", "linear-balanced"]}),
    )
    [line] = knn_caveats(run)
    assert line.startswith("knn-k200: k = 200 is larger than the probe set's 78 images per class")


def test_a_small_test_set_says_how_coarse_a_class_accuracy_is():
    from ssl_robustness.report.classes import coarseness_line, rare_classes_by_seed

    line = coarseness_line({"splits": {"test": {"counts": [40, 16, 90]}}})
    assert line.startswith("The smallest class has 16 test images: one image is 6.2 points")
    assert coarseness_line({"splits": {"test": {"counts": [50, 60]}}}) is None
    tails = rare_classes_by_seed(
        {"seeds": {"0": {"tiers": {"members": {"tail": ["ship", "truck"]}}}, "1": {}}}
    )
    assert tails.to_dict("records") == [
        {"seed": "0", "tail classes": "ship, truck"},
        {"seed": "1", "tail classes": ""},
    ]


def test_the_floor_margin_is_taken_in_the_verdicts_own_metric():
    """On an unbalanced test split the verdict runs on balanced accuracy: a method far above
    the floor in top-1 but within 3 points in balanced accuracy is near the floor there."""
    from ssl_robustness.report.verdict import _unfit_methods

    rows = pd.DataFrame(
        {
            "method": ["simclr", "simclr"],
            "subset": ["balanced", "exp-r0.1"],
            "balanced": [True, False],
            "evaluation": ["linear-balanced"] * 2,
            "top1": [0.60, 0.58],
            "floor_top1": [0.40, 0.40],
            "over_floor": [0.20, 0.18],
            "balanced_accuracy": [0.31, 0.30],
            "floor_balanced_accuracy": [0.29, 0.29],
        }
    )
    assert _unfit_methods(rows, "linear-balanced") == {}
    near = _unfit_methods(rows, "linear-balanced", metric="balanced_accuracy")
    assert list(near) == ["simclr"] and "+2.0 points" in near["simclr"]


def _own_arm(scenario, method, subset, seed, top1):
    """An end-to-end row: the linear probe trained on the arm's own subset."""
    row = _arm(scenario, method, subset, seed, top1)
    return {**row, "evaluation": "linear-own", "comparison": "end-to-end"}


def test_learned_gap_takes_each_arms_own_floor_on_end_to_end_gaps():
    """Issue 30: a random network probed on each arm's own data has a lower floor on the
    imbalanced arm (28.3% vs 25.7% in the committed study); subtracting the balanced arm's
    floor from both charges that to the method. Hand computation: balanced 0.50 over its
    floor 0.30 learned 0.20; imbalanced 0.42 over its own floor 0.26 kept 0.16; Δ_learned =
    (0.20 - 0.16) / 0.20 = 0.20 (the balanced floor for both would give 0.40)."""
    rows = [
        _own_arm("random-init", "random-init", "balanced", 0, 0.30),
        _own_arm("random-init", "random-init", "exp-r0.1", 0, 0.26),
        _own_arm("SSL-in-domain", "simclr", "balanced", 0, 0.50),
        _own_arm("SSL-in-domain", "simclr", "exp-r0.1", 0, 0.42),
        _floor(0, 0.30),  # the probe-set floor of the pretraining gap
        _arm("SSL-in-domain", "simclr", "balanced", 0, 0.50),
        _arm("SSL-in-domain", "simclr", "exp-r0.1", 0, 0.42),
    ]
    for r in rows[:2]:  # a random network is a fixed representation probed on each subset
        r.update(representation="random-init_none_s0", comparison="fixed-representation")
    results = _results(rows)
    runs, _ = gap_tables(results, "balanced")
    own = runs[runs["comparison"] == "end-to-end"].iloc[0]
    assert own["top1_floor"] == pytest.approx(0.30)
    assert own["top1_imbalanced_floor"] == pytest.approx(0.26)
    assert own["top1_learned_rel_gap"] == pytest.approx(0.20)
    # the pretraining gap: both arms probed on one balanced probe set, one floor
    pre = runs[runs["comparison"] == "pretraining"].iloc[0]
    assert pre["top1_learned_rel_gap"] == pytest.approx((0.20 - 0.12) / 0.20)


def test_learned_gap_is_undefined_where_the_balanced_arm_learned_nothing():
    runs, results = _study(
        [0.31, 0.45, 0.46], [0.30, 0.40, 0.41], [0.60, 0.61, 0.59], [0.55, 0.56, 0.54]
    )
    assert math.isnan(
        runs[(runs["method"] == "simclr") & (runs["seed"] == 0)]["top1_learned_rel_gap"].iloc[0]
    )
    [v] = V.verdicts(runs, results)
    [q] = v.learned_pairs
    # dropping seed 0 alone would select on the denominator: no Δ_learned test at all
    assert q.seeds == () and q.undefined_seeds == (0,)
    assert "Δ_learned undefined in seed 0" in W.paired_sentence(q)
    assert "no Δ_learned test for this pair" in W.paired_sentence(q)


def test_a_run_with_stale_gap_tables_is_reported_by_todays_rules(tmp_path):
    """A run written before each arm had its own floor keeps a stale Δ_learned in its
    gap_runs.csv; the report rebuilds the gaps from results.csv instead of quoting it."""
    from ssl_robustness.report.rundir import load_run

    rows = [
        _own_arm("random-init", "random-init", "balanced", 0, 0.30),
        _own_arm("random-init", "random-init", "exp-r0.1", 0, 0.26),
        _own_arm("SSL-in-domain", "simclr", "balanced", 0, 0.50),
        _own_arm("SSL-in-domain", "simclr", "exp-r0.1", 0, 0.42),
    ]
    for r in rows[:2]:
        r.update(representation="random-init_none_s0", comparison="fixed-representation")
    results = _results(rows)
    runs, gaps = gap_tables(results, "balanced")
    stale = runs.drop(columns=[c for c in runs if c.endswith("_imbalanced_floor")])
    stale["top1_learned_rel_gap"] = 0.40  # the balanced arm's floor subtracted from both
    (tmp_path / "tables").mkdir()
    results.to_csv(tmp_path / "tables" / "results.csv", index=False)
    stale.to_csv(tmp_path / "tables" / "gap_runs.csv", index=False)
    gaps.to_csv(tmp_path / "tables" / "gaps.csv", index=False)
    run = load_run(tmp_path)
    assert run.rebuilt_gaps
    own = run.tables["gap_runs"].query("comparison == 'end-to-end'").iloc[0]
    assert own["top1_learned_rel_gap"] == pytest.approx(0.20)


def test_the_bottom_line_says_what_of_the_data_it_rests_on():
    """Issue 31: the classes kept and dropped (why), each arm's share of the pool, a frequency
    tier of one class, and classes whose test set is a few data.group_by groups."""
    from ssl_robustness.report.bottom_line import bottom_line

    runs, results = _study(
        [0.50, 0.51, 0.49], [0.30, 0.30, 0.30], [0.60, 0.61, 0.59], [0.57, 0.575, 0.565]
    )
    [v] = V.verdicts(runs, results)
    stats = {
        "usage": {
            "pool": 20_000,
            "arms": {
                "balanced": {"n": 340, "share_of_pool": 0.017},
                "natural": {"n": 340, "share_of_pool": 0.017},
            },
            "classes_listed": 23,
            "classes_kept": 15,
            "dropped": [
                {"class": f"fish_{i}", "why": "data.classes.min_count 40"} for i in range(8)
            ],
        },
        "tiers": {"members": {"head": ["fish_9"], "medium": ["a", "b"], "tail": ["c", "d"]}},
        "item_groups_per_class": {"0": {"test": [2, 7, 9] + [5] * 12}},
    }
    text = bottom_line([v], [v], V.HEADLINE, results, stats)
    assert (
        "It rests on 15 of 23 listed classes and 340 images per arm (balanced 1.7%, natural 1.7% "
        "of the 20,000-image train pool); classes left out: 'fish_0' (data.classes.min_count "
        "40);"
    ) in text
    assert "; and 3 more." in text
    assert "the head tier is one class ('fish_9'): its accuracy is that class's" in text
    assert "1 of 15 classes have a test set of fewer than 5 data.group_by groups" in text
    assert "rests on" not in bottom_line([v], [v], V.HEADLINE, results, {})

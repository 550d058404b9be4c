"""The report reads right at a glance: a plain-words bottom line first, figures whose labels
and legends are whole and off the data, one colour per method in every chart, intervals
clipped at the accuracy axis and said so, and one unit per table column, named in its header."""

import re
from dataclasses import replace

import numpy as np
import pandas as pd
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer
from test_report import build_tables, make_run, section

from ssl_robustness.report import display as D
from ssl_robustness.report import plots as P
from ssl_robustness.report import render as R
from ssl_robustness.report.headline import headline_lines


def texts_outside(fig) -> list[str]:
    """The axes (titles, labels, tick labels, legends) whose drawn extent reaches past the
    figure's edges: a label cut at the border."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    out = []
    for ax in fig.axes:
        e = ax.get_tightbbox(renderer)
        if e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y0 < box.y0 - 1 or e.y1 > box.y1 + 1:
            out.append(ax.get_title() or ax.get_xlabel())
    for t in fig.texts:  # suptitle
        e = t.get_window_extent(renderer)
        if e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1:
            out.append(t.get_text())
    return out


def legends_overlap_axes(fig) -> bool:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None and legend.get_window_extent(renderer).overlaps(
            ax.get_window_extent(renderer)
        ):
            return True
    return False


def with_arm_accuracies(run, tables):
    """gap_runs as a study writes it: each arm's accuracy beside the gap."""
    res = tables["results"].set_index(["method", "subset", "seed"])["top1"]
    runs = tables["gap_runs"]
    runs["top1_balanced_arm"] = [
        res[(m, "balanced", s)] for m, s in zip(runs.method, runs.seed, strict=True)
    ]
    runs["top1_imbalanced_arm"] = [
        res[(m, "exp-r0.1", s)] for m, s in zip(runs.method, runs.seed, strict=True)
    ]
    runs.to_csv(run / "tables" / "gap_runs.csv", index=False)


def test_bottom_line_opens_the_report_with_accuracies_seeds_and_caveats(tmp_path):
    run, tables = make_run(tmp_path)
    with_arm_accuracies(run, tables)
    page = R.write_report(run).read_text()
    head = section(page, "headline")
    bottom = re.search(r'<p class="bottom-line"><b>Bottom line:</b> (.*?)</p>', head, re.S)
    assert bottom and head.index("bottom-line") < head.index("<h2>Verdict</h2>")
    text = bottom.group(1)
    assert "over 3 seeds" in text
    assert "simclr loses less than supervised" in text
    # the absolute accuracies of both arms, as in the verdict's sentences
    agg = tables["aggregate"].set_index(["method", "subset"])["top1_mean"]
    sl = (agg[("supervised", "balanced")], agg[("supervised", "exp-r0.1")])
    went = re.search(
        r"supervised \(the registered SL comparator\) went from ([\d.]+)% to ([\d.]+)%",
        text,
    )
    assert went and np.allclose([float(x) for x in went.groups()], 100 * np.array(sl), atol=0.051)
    # 5 test images per class: one image is 20 points of a class's accuracy
    assert "the test set has 5 images in its smallest class" in text and "per-class claims" in text
    summary = (run / "report" / "summary.md").read_text()
    assert summary.split("\n")[2].startswith("**Bottom line:** On linear-balanced")
    lines = headline_lines(run)
    assert lines[0].startswith("Bottom line: On linear-balanced") and "Caveats:" in lines[0]


def test_bottom_line_names_a_collapsed_arm_kept_as_measured(tmp_path):
    run, _ = make_run(tmp_path, collapsed={"simclr_exp-r0.1_s2"})
    text = headline_lines(run)[0]
    assert "over 3 seeds" in text
    assert "collapsed, kept in the gaps as measured: simclr_exp-r0.1_s2" in text
    # a run without registration.json says its test was read from an editable config
    assert "Not registered: this run has no registration.json" in text


def test_every_figure_keeps_its_labels_and_legends_off_the_data():
    tables = build_tables()
    by_class = P.class_gaps(
        tables["per_class"], "linear-balanced", "exp-r0.1", "balanced", "pretraining"
    )
    figures = {
        "gap": P.gap_figure(tables["gaps"], "linear-balanced", "top1", "pretraining"),
        "tiers": P.tier_bars_figure(tables["aggregate"], "linear-balanced", "top1", "pretraining"),
        "pay": P.which_classes_pay_figure(by_class, "linear-balanced", "exp-r0.1"),
        "counts": P.class_counts_figure(
            ["ant", "bee", "cat", "dog"], np.array([100, 46, 24, 10]), np.array(["head"] * 4), "t"
        ),
    }
    for name, fig in figures.items():
        assert texts_outside(fig) == [], name
        assert not legends_overlap_axes(fig), name
        for ax in fig.axes:
            if ax.get_legend() is not None and fig._suptitle is None:
                title = ax.title.get_window_extent(fig.canvas.get_renderer())
                assert ax.get_legend().get_window_extent().y1 <= title.y0 + 1, name
        P.plt.close(fig)


def test_one_colour_per_method_in_every_chart():
    tables = build_tables()
    palette = P.method_palette(
        zip(tables["results"]["scenario"], tables["results"]["method"], strict=True)
    )
    assert len(set(palette.values())) == len(palette) == 3
    assert not set(palette.values()) & set(P.TIER_COLORS.values())
    gaps = tables["gaps"]
    fig = P.gap_figure(gaps, "linear-balanced", "top1", "pretraining", palette)
    [bars] = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    g = gaps[(gaps["evaluation"] == "linear-balanced") & (gaps["comparison"] == "pretraining")]
    bar_colors = [to_hex(b.get_facecolor()) for b in bars.patches]
    assert bar_colors == [palette[(s, m)] for s, m in zip(g["scenario"], g["method"], strict=True)]
    P.plt.close(fig)
    by_class = P.class_gaps(
        tables["per_class"], "linear-balanced", "exp-r0.1", "balanced", "pretraining"
    )
    fig = P.which_classes_pay_figure(by_class, "linear-balanced", "exp-r0.1", palette)
    points = {c.get_label(): to_hex(c.get_facecolor()[0]) for c in fig.axes[0].collections}
    for (scenario, method), color in palette.items():
        assert points[f"{method} ({scenario})"] == color
    P.plt.close(fig)
    # SL first: supervised never takes an SSL method's colour because of where it is listed
    later = P.method_palette([("SSL-in-domain", "simclr"), ("SL", "supervised")])
    assert later[("SL", "supervised")] == P.METHOD_COLORS[0]


def test_group_intervals_are_clipped_at_the_axis_and_the_title_says_so():
    agg = build_tables()["aggregate"]
    agg["tail_ci95"] = 0.5  # a 2-seed interval of ±50 points: past 0 and 100%
    fig = P.tier_bars_figure(agg, "linear-balanced", "top1", "pretraining")
    ax = fig.axes[0]
    assert ax.get_ylim() == (0.0, 100.0)
    tail = next(c for c in ax.containers if isinstance(c, BarContainer) and c.get_label() == "tail")
    for seg in tail.errorbar.lines[2][0].get_segments():
        assert seg[0][1] >= 0.0 and seg[1][1] <= 100.0
    n = len(tail.patches)
    assert f"{n} intervals clipped at 0 or 100%" in ax.get_title()
    P.plt.close(fig)


def test_tables_name_one_unit_per_column_and_hide_nothing(tmp_path):
    run, tables = make_run(tmp_path)
    page = R.write_report(run).read_text()
    gap = section(page, "balanced-vs-imbalanced-gap")
    headers = re.findall(r"<th>([^<]*)</th>", gap)
    assert "top-1 gap (points)" in headers and "top-1 Δ (%)" in headers
    assert not [h for h in headers if h.endswith(("_mean", "_ci95"))]
    # fractions become points: the first row's gap, 100x, one decimal
    first = tables["gaps"].iloc[0]
    assert f"<td>{100 * first['top1_gap_mean']:.1f}</td>" in gap
    acc = section(page, "accuracy-by-tier")
    assert "top-1 (%)" in re.findall(r"<th>([^<]*)</th>", acc)
    # no scroll boxes: a hidden right half vanishes in print and screenshots
    assert 'class="wide"' not in page and 'class="scroll"' not in page
    assert "overflow-x: auto" not in page and "white-space: nowrap" not in page


def test_wide_tables_come_in_parts_that_repeat_their_keys():
    cols = {"class": ["a"], "tier": ["head"], "n in b": [1], "n in i": [1]}
    for m in ("m1", "m2", "m3", "m4", "m5"):
        cols |= {f"{m}: b (%)": [1.0], f"{m}: i (%)": [1.0], f"{m}: gap (points)": [0.0]}
    parts = D.class_parts(pd.DataFrame(cols))
    assert [len(p.columns) for p in parts] == [4 + 6, 4 + 6, 4 + 3]
    assert all(list(p.columns[:4]) == ["class", "tier", "n in b", "n in i"] for p in parts)


def test_words_read_right(tmp_path):
    run, _ = make_run(tmp_path)
    page = R.write_report(run).read_text()
    assert "the balanced arm balanced" not in page
    assert "in the balanced arm and the imbalanced arm (exp-r0.1)" in page
    summary = (run / "report" / "summary.md").read_text()
    italic = [line for line in summary.splitlines() if line.startswith("_") and line.endswith("_")]
    assert italic and not [line for line in italic if line[-2].isspace() or line[1].isspace()]


def test_bottom_line_states_only_the_confirmatory_familys_words_as_findings():
    """A method near the floor is tested outside the family (unadjusted): its words, however
    strong, are not 'the confirmatory test finds'."""
    from ssl_robustness.report import bottom_line as B
    from ssl_robustness.report import verdict as V

    def pair(method, family, p_adj):
        return V.Paired(
            "SSL-in-domain",
            method,
            "supervised",
            (0, 1, 2),
            0.01,
            0.10,
            -9.0,
            -15.0,
            -3.0,
            V.LESS,
            p=0.01,
            p_adjusted=p_adj,
            family=family,
            family_size=1,
        )

    text = B._finding(
        [pair("simclr", V.CONFIRMATORY, 0.02), pair("mocov2", V.EXPLORATORY, 0.3)], "supervised"
    )
    found = text.split("The confirmatory test finds: ")[1].split(".")[0]
    assert "simclr loses less than supervised" in found and "mocov2" not in found
    assert "mocov2 is outside the confirmatory family" in text and "exploratory only" in text


def test_the_caveats_tell_left_out_methods_from_ones_near_the_floor_in_one_seed():
    from ssl_robustness.report import bottom_line as B
    from ssl_robustness.report import verdict as V

    v = V.Verdict(
        "linear-balanced",
        "pretraining",
        "exp-r0.1",
        "top1",
        "supervised",
        {},
        (),
        near_floor=("simsiam (+1.2 points over the random-init floor in its balanced arm)",),
    )
    results = pd.DataFrame(
        {
            "method": ["mocov2", "mocov2", "simsiam", "simclr"],
            "evaluation": ["linear-balanced"] * 4,
            "balanced": [True, True, True, False],
            # simclr's imbalanced arm at the floor is a loss, counted: no caveat for it
            "over_floor": [0.02, 0.08, 0.01, 0.0],
        }
    )
    caveats = B._caveats(v, results)
    assert caveats[0].startswith("simsiam within 3 points") and "not fit for the test" in caveats[0]
    assert caveats[1].startswith("mocov2 within 3 points") and "still in the test" in caveats[1]
    assert not any("simclr" in c for c in caveats)


def test_the_caveats_flag_delta_and_delta_learned_pointing_opposite_ways():
    """Two seeds give 'too few' words on both measures, so only the signs can disagree: SSL
    loses less on Δ (d -2.0 points) and more on Δ_learned (d +4.0) is a caveat; the same sign
    is not. `Paired.mean` is a fraction of Δ, as every other field of it."""
    from ssl_robustness.report import bottom_line as B
    from ssl_robustness.report import verdict as V
    from ssl_robustness.report import verdict_words as W

    def pair(method, mean, measure):
        return V.Paired(
            "SSL-in-domain", method, "supervised", (0, 1), 0.05, 0.07, mean,
            float("nan"), float("nan"), V.TOO_FEW, measure=measure,
        )  # fmt: skip

    v = V.Verdict(
        "linear-balanced", "pretraining", "exp-r0.1", "top1", "supervised", {},
        (pair("simclr", -0.02, "rel_gap"), pair("mocov2", -0.01, "rel_gap")),
        learned_pairs=(
            pair("simclr", 0.04, "learned_rel_gap"), pair("mocov2", -0.03, "learned_rel_gap"),
        ),
    )  # fmt: skip
    flags = [c for c in B._caveats(v, pd.DataFrame()) if "Δ_learned" in c]
    assert flags == [
        "Δ and Δ_learned point in opposite directions for simclr vs supervised (mean d -2.0 "
        "points on Δ, +4.0 on Δ_learned): neither direction holds on both measures"
    ]
    assert W.opposite(0.0001, -0.03) is False  # a d that rounds to 0.0 points no way
    assert W.opposite(0.001, -0.03) is True
    # a Δ_learned undefined in one seed is no direction to set against Δ's (the quick start)
    half = replace(v.learned_pairs[0], seeds=(0,), undefined_seeds=(1,))
    v2 = replace(v, learned_pairs=(half, v.learned_pairs[1]))
    assert not [c for c in B._caveats(v2, pd.DataFrame()) if "Δ_learned" in c]


def test_runs_written_before_the_tiers_had_their_word_are_read_as_tiers():
    """stats.json's "groups" and the per-class table's "group" column of older runs are read as
    "tiers" and "tier", so their reports still have tier colours, tables and caveats."""
    from ssl_robustness.report.rundir import tiers_were_groups

    old = {"groups": {"rule": "thirds"}, "seeds": {"0": {"groups": {"per_class": ["head"]}}}}
    tables = {"per_class": pd.DataFrame({"class": ["a"], "group": ["head"]})}
    stats = tiers_were_groups(old, tables)
    assert stats["tiers"] == {"rule": "thirds"} and "groups" not in stats
    assert stats["seeds"]["0"]["tiers"]["per_class"] == ["head"]
    assert list(tables["per_class"].columns) == ["class", "tier"]
    new = {"tiers": {"rule": "oltr"}}
    assert tiers_were_groups(new, {}) == {"tiers": {"rule": "oltr"}}

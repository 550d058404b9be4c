"""The report reads a run directory and nothing else: a synthetic one, written by the test."""

import json
import re
import subprocess
import sys
from inspect import signature

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.container import BarContainer
from scipy import stats as sps

from ssl_robustness.errors import UserError
from ssl_robustness.report import plots as P
from ssl_robustness.report import render as R
from ssl_robustness.report import sentences as S
from ssl_robustness.report.plots import TIER_COLORS

CLASSES = ["ant", "bee", "cat", "dog"]
GROUPS = ["head", "medium", "medium", "tail"]
IMB_COUNTS = [100, 46, 24, 10]
TEST_COUNTS = {True: [5, 5, 5, 5], False: [8, 6, 5, 5]}
SEEDS = (0, 1, 2)
# per-class accuracy drop from balanced to imbalanced pretraining, per method (x seed factor)
DROP = {
    ("SL", "supervised"): np.array([0.0, 0.05, 0.10, 0.30]),
    ("SL", "supervised-balanced_softmax"): np.array([0.0, 0.02, 0.05, 0.10]),
    ("SSL-in-domain", "simclr"): np.array([0.0, 0.01, 0.02, 0.05]),
}
BASE = np.array([0.9, 0.8, 0.8, 0.7])


def accuracy(method_key, subset, seed):
    acc = BASE - 0.02 * seed
    if subset == "exp-r0.1":
        acc = acc - DROP[method_key] * (1 + 0.3 * seed)
    return acc


def ci95(v):
    v = np.asarray(v, float)
    if len(v) < 2:
        return np.nan
    return sps.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))


def build_tables(test_balanced=True, collapsed=()):
    w = np.array(TEST_COUNTS[test_balanced], float)
    res, pc = [], []
    for scenario, method in DROP:
        for subset, bal in (("balanced", True), ("exp-r0.1", False)):
            for seed in SEEDS:
                acc = accuracy((scenario, method), subset, seed)
                rep = f"{method}_{subset}_s{seed}"
                groups = {
                    g: acc[[i for i, x in enumerate(GROUPS) if x == g]].mean() for g in TIER_COLORS
                }
                common = dict(
                    representation=rep,
                    scenario=scenario,
                    method=method,
                    subset=subset,
                    seed=seed,
                    evaluation="linear-balanced",
                    comparison="pretraining",
                )
                res.append(
                    {
                        **common,
                        "rep_dir": f"{rep}-abc",
                        "level": 1.0 if bal else 0.1,
                        "balanced": bal,
                        "n": 180,
                        "adapt_on": "probe-balanced",
                        "status": "ok",
                        "top1": float((acc * w).sum() / w.sum()),
                        "balanced_accuracy": float(acc.mean()),
                        **groups,
                        "collapsed": rep in collapsed,
                        "collapse_ratio": 0.5,
                        "error": "",
                    }
                )
                for c, name in enumerate(CLASSES):
                    pc.append(
                        {
                            **common,
                            "class": name,
                            "train_count": IMB_COUNTS[c],
                            "tier": GROUPS[c],
                            "accuracy": float(acc[c]),
                        }
                    )
    results, per_class = pd.DataFrame(res), pd.DataFrame(pc)
    keys = ["scenario", "method", "evaluation", "comparison", "seed"]
    runs = []
    for key, g in results.groupby(keys, sort=False):
        b = g[g["subset"] == "balanced"].iloc[0]
        i = g[g["subset"] == "exp-r0.1"].iloc[0]
        row = dict(zip(keys, key, strict=True)) | {"subset": "exp-r0.1", "level": 0.1}
        for m in ("top1", "balanced_accuracy", "head", "medium", "tail"):
            row[f"{m}_gap"] = b[m] - i[m]
            row[f"{m}_rel_gap"] = (b[m] - i[m]) / b[m]
        runs.append(row)
    gap_runs = pd.DataFrame(runs)
    summ = []
    for key, g in gap_runs.groupby(
        ["scenario", "method", "evaluation", "comparison", "subset"], sort=False
    ):
        row = dict(
            zip(["scenario", "method", "evaluation", "comparison", "subset"], key, strict=True)
        )
        row |= {"level": 0.1, "seeds": len(g)}
        for col in [c for c in g if c.endswith("gap")]:
            row |= {
                f"{col}_mean": g[col].mean(),
                f"{col}_std": g[col].std(ddof=1),
                f"{col}_ci95": ci95(g[col]),
            }
        summ.append(row)
    agg = []
    for key, g in results.groupby(
        ["scenario", "method", "subset", "evaluation", "comparison"], sort=False
    ):
        row = dict(
            zip(["scenario", "method", "subset", "evaluation", "comparison"], key, strict=True)
        )
        row["seeds"] = len(g)
        for m in ("top1", "balanced_accuracy", "head", "medium", "tail"):
            row |= {f"{m}_mean": g[m].mean(), f"{m}_std": g[m].std(ddof=1), f"{m}_ci95": ci95(g[m])}
        agg.append(row)
    return {
        "results": results,
        "per_class": per_class,
        "aggregate": pd.DataFrame(agg),
        "gaps": pd.DataFrame(summ),
        "gap_runs": gap_runs,
    }


def make_run(tmp_path, *, test_balanced=True, tsne=False, collapsed=(), old_stats=False):
    run = tmp_path / "run"
    tables = build_tables(test_balanced, collapsed)
    (run / "tables").mkdir(parents=True)
    for name, df in tables.items():
        df.to_csv(run / "tables" / f"{name}.csv", index=False)
    config = {
        "name": "synthetic",
        "seeds": list(SEEDS),
        "report": {"tsne": tsne, "tsne_max_points": 30},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "environment.json").write_text(json.dumps({"torch": "2.x", "python": "3.x"}))
    failures = [
        {
            "representation": "in1k-moco_none_s0",
            "scenario": "SSL-ImageNet",
            "error": "ValueError: wrong architecture <b>",
            "traceback": "...",
        }
    ]
    (run / "failures.json").write_text(json.dumps(failures))
    test = TEST_COUNTS[test_balanced]
    stats = {
        "classes": CLASSES,
        "splits": {
            "train": {"counts": [200] * 4, "n": 800},
            "val": {"counts": [5] * 4, "n": 20},
            "test": {"counts": test, "n": sum(test)},
        },
        "subsets": {
            "balanced": {"level": 1.0, "balanced": True, "n": 180, "counts": [45] * 4},
            "exp-r0.1": {"level": 0.1, "balanced": False, "n": 180, "counts": IMB_COUNTS},
        },
        "tiers": {
            "rule": "thirds",
            "from_subset": "exp-r0.1",
            "per_class": GROUPS,
            "members": {
                g: [c for c, x in zip(CLASSES, GROUPS, strict=True) if x == g] for g in TIER_COLORS
            },
        },
    }
    if not old_stats:
        stats |= {
            "test_balanced": test_balanced,
            "probe_balanced": {"protocol": "disjoint", "per_class": 50, "n": 200},
            "probe_overlap": {
                "0": {"balanced": [0] * 4, "exp-r0.1": [0] * 4},
                "1": {"balanced": [0] * 4, "exp-r0.1": [0] * 4},
            },
            "interval_covers": "Seeds vary the subset draws and the initialisation; "
            "val and test are fixed.",
            "bad_images": {"count": 0, "items": []},
        }
    (run / "data" / "manifests").mkdir(parents=True)
    (run / "data" / "stats.json").write_text(json.dumps(stats))
    labels = np.repeat(np.arange(4), test)
    pd.DataFrame(
        {
            "item": [f"x{i}.png" for i in range(len(labels))],
            "label": labels,
            "class_name": [CLASSES[i] for i in labels],
            "split": "test",
            "subset": "",
        }
    ).to_csv(run / "data" / "manifests" / "split-test.csv", index=False)
    rng = np.random.default_rng(0)
    for rep_dir in tables["results"]["rep_dir"].unique():
        feats = (rng.normal(size=(len(labels), 6)) + labels[:, None]).astype(np.float32)
        (run / "representations" / rep_dir / "features").mkdir(parents=True)
        np.save(run / "representations" / rep_dir / "features" / "test.npy", feats)
    return run, tables


def expected_d(tables, metric, ssl="simclr", sl="supervised", family=1):
    """Mean d and its interval, simultaneous over a confirmatory family of `family` tests."""
    g = tables["gap_runs"].set_index(["method", "seed"])[f"{metric}_rel_gap"]
    d = np.array([g[(ssl, s)] - g[(sl, s)] for s in SEEDS])
    half = sps.t.ppf(1 - 0.025 / family, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


def section(page, name):
    return page.split(f"<section id='{name}'>")[1].split("</section>")[0]


def test_write_report_takes_only_the_run_directory(tmp_path):
    assert list(signature(R.write_report).parameters) == ["run_dir"]
    run, tables = make_run(tmp_path)
    page_path = R.write_report(run)
    assert page_path == run / "report" / "report.html"
    page = page_path.read_text()
    assert (run / "report" / "summary.md").exists()
    for name in ("class_counts", "gap", "tiers", "which_classes_pay"):
        data = (run / "report" / "figures" / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (run / "report").rglob("*") if p.name.endswith(".tmp")]
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4 and all(len(i) > 1000 for i in images)
    # opens offline: one inline script (table sorting), nothing fetched
    assert "http" not in page and page.count("<script") == 1 and "<script>" in page
    assert not re.search(r"<(script|link|img)[^>]*\b(src|href)=\"(?!data:)", page)
    for sid in (
        "headline",
        "other-comparisons",
        "data",
        "balanced-vs-imbalanced-gap",
        "accuracy-by-tier",
        "which-classes-pay",
        "t-sne-of-test-features",
        "collapse-and-failures",
        "reproducibility",
    ):
        assert f"<section id='{sid}'>" in page
    # the failure's message is escaped by the template, not injected
    assert "FAILED in1k-moco_none_s0:" in page and "wrong architecture &lt;b&gt;" in page
    assert "seeds [0, 1, 2]" in page and "torch" in page


def test_report_module_imports_no_study_or_data_preparation():
    code = (
        "import sys, ssl_robustness.report.render\n"
        "bad = [m for m in ('ssl_robustness.study', 'ssl_robustness.data.prepare',"
        " 'ssl_robustness.data.study_data', 'ssl_robustness.data.arrange',"
        " 'ssl_robustness.data.store.image_store', 'ssl_robustness.evaluation.run',"
        " 'ssl_robustness.config', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_verdict_in_the_headline_is_the_paired_interval(tmp_path):
    run, tables = make_run(tmp_path)
    page = R.write_report(run).read_text()
    head = section(page, "headline")
    tests = pd.read_csv(run / "report" / "tests.csv")
    family = tests[tests["family"] == "confirmatory"]
    assert len(family) == 1  # simclr against the registered comparator, the plain baseline
    assert family["sl_method"].tolist() == ["supervised"]
    mean, low, high = expected_d(tables, "top1", family=1)
    assert high < 0
    assert (
        f"simclr (SSL-in-domain) loses less than supervised: d = {100 * mean:+.1f} points of Δ, "
        f"family-wise 95% CI [{100 * low:+.1f}, {100 * high:+.1f}] (Bonferroni over 1 test)"
    ) in head
    assert "registered SL comparator: supervised" in head
    assert "chosen after the fact and so exploratory: supervised-balanced_softmax" in head
    assert "The verdict uses top-1 accuracy (the test split is balanced)." in head
    assert re.search(r"supervised \(SL\) loses \d+\.\d points top-1", head)
    assert "overlap" not in head
    summary = (run / "report" / "summary.md").read_text()
    assert f"[{100 * low:+.1f}, {100 * high:+.1f}]" in summary


def test_unbalanced_test_split_is_said_and_the_verdict_uses_balanced_accuracy(tmp_path):
    run, tables = make_run(tmp_path, test_balanced=False)
    page = R.write_report(run).read_text()
    data = section(page, "data")
    assert "The test split is NOT balanced (5..8 images per class)" in data
    head = section(page, "headline")
    assert "balanced accuracy (mean per-class recall), because the test split is not balanced" in (
        head
    )
    mean, low, high = expected_d(tables, "balanced_accuracy", family=1)
    top1_mean, _, _ = expected_d(tables, "top1", family=1)
    assert f"{100 * mean:+.1f}" != f"{100 * top1_mean:+.1f}"  # the two metrics differ here
    assert f"d = {100 * mean:+.1f} points of Δ, family-wise 95% CI [{100 * low:+.1f}" in head
    assert "balanced accuracy Δ (%)" in section(page, "balanced-vs-imbalanced-gap")


def test_interval_covers_and_probe_overlap_are_quoted(tmp_path):
    run, _ = make_run(tmp_path)
    page = R.write_report(run).read_text()
    gap = section(page, "balanced-vs-imbalanced-gap")
    assert "What an interval covers:</b> Seeds vary the subset draws and the initialisation" in gap
    data = section(page, "data")
    assert "200 images, 50 per class, disjoint from every pretraining subset" in data
    overlap = S.probe_overlap_table(json.loads((run / "data" / "stats.json").read_text()))
    assert overlap["overlap_images"].tolist() == [0, 0, 0, 0]
    assert overlap["subset"].tolist() == ["balanced", "exp-r0.1"] * 2
    pooled = S.probe_overlap_table({"probe_overlap": {"0": {"exp-r0.1": [3, 0, 2, 0]}}})
    assert pooled.iloc[0][["overlap_images", "classes_overlapping"]].tolist() == [5, 2]


def test_older_run_without_new_stats_keys_still_reports(tmp_path):
    run, _ = make_run(tmp_path, old_stats=True)
    page = R.write_report(run).read_text()
    assert "not recorded in this run&#39;s stats.json" in page or "not recorded" in page
    assert "protocol not recorded (an older run)" in section(page, "data")
    assert "The test split is balanced (5 images per class)." in section(page, "data")


def test_collapsed_representation_is_kept_as_measured_and_named(tmp_path):
    run, _ = make_run(tmp_path, collapsed={"simclr_exp-r0.1_s2"})
    page = R.write_report(run).read_text()
    head = section(page, "headline")
    verdict = head.split("How much each method loses")[0]
    assert re.search(r"CI \[[^]]+\] \(Bonferroni over 1 test\), [^)]+\), over 3 seeds", verdict)
    assert "over 2 seeds" not in verdict
    assert "Collapsed (feature spread ~0), kept in their gaps as measured" in head
    assert "simclr_exp-r0.1_s2" in head
    assert "collapsed: simclr_exp-r0.1_s2" in section(page, "collapse-and-failures")


def test_not_a_run_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no tables/results.csv"):
        R.write_report(tmp_path)


def test_which_classes_pay_is_the_per_class_gap_mean_over_seeds():
    tables = build_tables()
    got = P.class_gaps(
        tables["per_class"], "linear-balanced", "exp-r0.1", "balanced", "pretraining"
    )
    sup = got[got["method"] == "supervised"].set_index("class")
    factor = np.mean([1 + 0.3 * s for s in SEEDS])
    np.testing.assert_allclose(sup["gap"].to_numpy(), DROP[("SL", "supervised")] * factor)
    assert sup["train_count"].tolist() == IMB_COUNTS and sup["seeds"].tolist() == [3] * 4
    fig = P.which_classes_pay_figure(got, "linear-balanced", "exp-r0.1")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    method_colors = {tuple(c.get_facecolor()[0][:3]) for c in ax.collections}
    assert len(method_colors) == 3
    rug = {line.get_color() for line in ax.lines if line.get_marker() == "|"}
    assert rug == set(TIER_COLORS.values())
    P.plt.close(fig)


def test_error_bars_are_the_ci95_and_groups_keep_their_colours():
    tables = build_tables()
    gaps = tables["gaps"]
    fig = P.gap_figure(gaps, "linear-balanced", "top1", "pretraining")
    [bars] = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)]
    segs = bars.errorbar.lines[2][0].get_segments()
    half = [abs(s[1][1] - s[0][1]) / 2 for s in segs]
    np.testing.assert_allclose(half, gaps["top1_gap_ci95"].to_numpy() * 100)
    P.plt.close(fig)
    agg = tables["aggregate"]
    fig = P.tier_bars_figure(agg, "linear-balanced", "top1", "pretraining")
    ax = fig.axes[0]
    by_label = {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}
    for g, color in TIER_COLORS.items():
        assert P.matplotlib.colors.to_hex(by_label[g].patches[0].get_facecolor()) == color
        segs = by_label[g].errorbar.lines[2][0].get_segments()
        np.testing.assert_allclose(
            [abs(s[1][1] - s[0][1]) / 2 for s in segs], agg[f"{g}_ci95"].to_numpy() * 100
        )
    P.plt.close(fig)


def test_tsne_reads_cached_test_features(tmp_path):
    run, _ = make_run(tmp_path, tsne=True)
    page = R.write_report(run).read_text()
    tsne = section(page, "t-sne-of-test-features")
    # seed 0, trained on the main imbalanced subset: one per method
    names = sorted(p.name for p in (run / "report" / "figures").glob("tsne-*.png"))
    assert names == [
        "tsne-simclr_exp-r0.1_s0.png",
        "tsne-supervised-balanced_softmax_exp-r0.1_s0.png",
        "tsne-supervised_exp-r0.1_s0.png",
    ]
    assert tsne.count("data:image/png;base64,") == 3


def test_cli_report_rebuilds_from_the_run_directory(tmp_path):
    from click.testing import CliRunner

    from ssl_robustness.cli import cli

    run, _ = make_run(tmp_path)
    out = CliRunner().invoke(cli, ["report", str(run)])
    assert out.exit_code == 0, out.output
    assert (run / "report" / "report.html").exists()


def test_a_study_without_gaps_still_reports(tmp_path):
    """Only imported representations and no random init: the gap tables have no columns
    (pandas writes them as one empty line), which is a study's answer, not a damaged file."""
    run, tables = make_run(tmp_path)
    for name in ("gaps", "gap_runs"):
        pd.DataFrame().to_csv(run / "tables" / f"{name}.csv", index=False)
    page = R.write_report(run).read_text()
    assert "<section id='headline'>" in page

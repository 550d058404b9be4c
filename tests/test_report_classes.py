"""The report at many classes: per-class table, point chart, colours, t-SNE, undertrained flag."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.colors import to_hex
from test_report import CLASSES, GROUPS, IMB_COUNTS, SEEDS, build_tables, make_run, section

from conftest import tiny_study
from ssl_robustness.report import plots as P
from ssl_robustness.report import render as R
from ssl_robustness.report import tables as T
from ssl_robustness.report.classes import class_table, rarity_table
from ssl_robustness.report.tsne import colour_rows, embed, subsample, tsne_figure

BAL_COUNTS = [45, 45, 45, 45]
METHODS = [("SL", "supervised"), ("SL", "supervised-balanced_softmax"), ("SSL-in-domain", "simclr")]


def predictions(method: int, subset: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A test split of 4 classes x 10 images and a seeded prediction for each image."""
    labels = np.repeat(np.arange(4), 10)
    rng = np.random.default_rng([method, seed, subset == "balanced"])
    right = rng.random(40) < (0.9 if subset == "balanced" else 0.6)
    return labels, np.where(right, labels, (labels + 1) % 4)


def per_class_from_predictions() -> pd.DataFrame:
    """per_class.csv as the tables write it: accuracy per class from the predictions."""
    rows = []
    for k, (scenario, method) in enumerate(METHODS):
        for subset in ("balanced", "exp-r0.1"):
            for seed in SEEDS:
                labels, preds = predictions(k, subset, seed)
                for c, name in enumerate(CLASSES):
                    rows.append(
                        {
                            "representation": f"{method}_{subset}_s{seed}",
                            "scenario": scenario,
                            "method": method,
                            "subset": subset,
                            "seed": seed,
                            "evaluation": "linear-balanced",
                            "comparison": "pretraining",
                            "class": name,
                            "train_count": IMB_COUNTS[c],
                            "arm_count": (BAL_COUNTS if subset == "balanced" else IMB_COUNTS)[c],
                            "tier": GROUPS[c],
                            "accuracy": float((preds[labels == c] == c).mean()),
                        }
                    )
    return pd.DataFrame(rows)


def expected(k: int, subset: str, c: int) -> float:
    """Class c's accuracy in percent, mean over seeds, straight from the predictions."""
    hits = []
    for seed in SEEDS:
        labels, preds = predictions(k, subset, seed)
        hits.append((preds[labels == c] == c).mean())
    return 100 * float(np.mean(hits))


def test_class_table_numbers_are_the_predictions_per_class_accuracy():
    table = class_table(per_class_from_predictions(), "exp-r0.1", "balanced")
    assert table["class"].tolist() == CLASSES  # D(n,r) counts, largest first
    assert table["tier"].tolist() == GROUPS
    assert table["n in balanced"].tolist() == BAL_COUNTS
    assert table["n in exp-r0.1"].tolist() == IMB_COUNTS
    for k, (_, method) in enumerate(METHODS):
        bal = [expected(k, "balanced", c) for c in range(4)]
        imb = [expected(k, "exp-r0.1", c) for c in range(4)]
        np.testing.assert_allclose(table[f"{method}: balanced (%)"], bal)
        np.testing.assert_allclose(table[f"{method}: exp-r0.1 (%)"], imb)
        np.testing.assert_allclose(table[f"{method}: gap (points)"], np.subtract(bal, imb))
        for c in range(4):  # the gap's 95% t-interval over seeds, from the predictions
            gaps = [100 * (hit(k, "balanced", c, s) - hit(k, "exp-r0.1", c, s)) for s in SEEDS]
            half = T975[len(SEEDS)] * np.std(gaps, ddof=1) / np.sqrt(len(SEEDS))
            assert table[f"{method}: gap ±95% (points)"][c] == pytest.approx(half)
    assert len(table.columns) == 4 + 4 * len(METHODS)


T975 = {2: 12.706204736174698, 3: 4.302652729749464}  # scipy.stats.t.ppf(0.975, n - 1)


def hit(k: int, subset: str, c: int, seed: int) -> float:
    labels, preds = predictions(k, subset, seed)
    return float((preds[labels == c] == c).mean())


def test_the_gap_by_rarity_rank_pools_the_rarest_class_of_each_seed():
    pc = per_class_from_predictions()
    # seed 1 draws other rare classes: its counts reversed, so "ant" is its rarest class
    flip = dict(zip(CLASSES, IMB_COUNTS[::-1], strict=True))
    one = pc["seed"] == SEEDS[1]
    pc.loc[one, "train_count"] = pc.loc[one, "class"].map(flip)
    table = rarity_table(pc, "exp-r0.1", "balanced")
    rarest = table[table["rarity rank (1 = rarest)"] == 1].iloc[0]
    assert rarest["classes"] == "2 classes"
    for k, (_, method) in enumerate(METHODS):
        want = []
        for seed in SEEDS:
            counts = flip if seed == SEEDS[1] else dict(zip(CLASSES, IMB_COUNTS, strict=True))
            c = CLASSES.index(min(CLASSES, key=lambda n: counts[n]))
            want.append(100 * (hit(k, "balanced", c, seed) - hit(k, "exp-r0.1", c, seed)))
        assert rarest[f"{method}: gap (points)"] == pytest.approx(np.mean(want))


def test_class_table_names_the_scenario_only_when_two_share_a_method_and_reads_old_tables():
    pc = per_class_from_predictions().drop(columns="arm_count")
    pc.loc[pc["method"] == "supervised-balanced_softmax", "method"] = "simclr"
    table = class_table(pc, "exp-r0.1", "balanced", dict.fromkeys(CLASSES, 45))
    assert "simclr (SL): gap (points)" in table and "simclr (SSL-in-domain): gap (points)" in table
    assert "supervised: gap (points)" in table
    assert table["n in balanced"].tolist() == BAL_COUNTS  # from stats when no arm_count


def test_report_shows_the_sortable_class_table_from_predictions(tmp_path):
    run, _ = make_run(tmp_path)
    per_class_from_predictions().to_csv(run / "tables" / "per_class.csv", index=False)
    page = R.write_report(run).read_text()
    pay = section(page, "which-classes-pay")
    parts = pay.split('<div id="class-table">')[1].replace("<wbr>", "").split("</table>")
    # wide tables come in parts of two methods, each repeating class, group and counts
    table = next(p for p in parts if "simclr: gap (points)" in p)
    assert 'class="dataframe sortable"' in table
    headers = re.findall(r"<th>([^<]*)</th>", table)
    assert headers[:4] == ["class", "tier", "n in balanced", "n in exp-r0.1"]
    rows = re.findall(r"<tr>\s*(.*?)</tr>", table, re.S)  # body rows: the header has a style
    cells = [re.findall(r"<td>([^<]*)</td>", r) for r in rows]
    assert [r[0] for r in cells] == CLASSES
    dog = cells[3]
    assert dog[1:4] == ["tail", "45", "10"]
    k = [m for _, m in METHODS].index("simclr")
    col = headers.index("simclr: gap (points)")
    assert dog[col] == f"{expected(k, 'balanced', 3) - expected(k, 'exp-r0.1', 3):.1f}"
    # the sort script is inline and addresses the sortable tables
    script = page.split("<script>")[1].split("</script>")[0]
    assert 'querySelectorAll("table.sortable th")' in script and "src=" not in script
    summary = (run / "report" / "summary.md").read_text()
    assert "| class | tier | n in balanced | n in exp-r0.1 |" in summary


def test_which_classes_pay_draws_points_never_lines_between_classes():
    got = P.class_gaps(
        build_tables()["per_class"], "linear-balanced", "exp-r0.1", "balanced", "pretraining"
    )
    fig = P.which_classes_pay_figure(got, "linear-balanced", "exp-r0.1")
    ax = fig.axes[0]
    # only the group rug (markers, no line) and the zero line (flat) are Line2D
    joined = [
        line
        for line in ax.lines
        if line.get_linestyle() not in ("None", "", " ") and len(set(line.get_ydata())) > 1
    ]
    assert joined == []
    assert len(ax.collections) == 3  # one scatter per method
    sizes = {len(c.get_offsets()) for c in ax.collections}
    assert sizes == {len(CLASSES)}
    P.plt.close(fig)


def test_one_colour_per_group_in_every_chart():
    group_hex = {g: to_hex(c) for g, c in P.TIER_COLORS.items()}
    groups = set(group_hex.values())
    assert len(groups) == 3
    assert not groups & {to_hex(c) for c in P.METHOD_COLORS}
    assert not groups & {to_hex(c) for c in P.CLASS_COLORS}
    counts = np.array(IMB_COUNTS)
    fig = P.class_counts_figure(CLASSES, counts, np.array(GROUPS), "t")
    bars = fig.axes[0].patches
    assert [to_hex(b.get_facecolor()) for b in bars[: len(CLASSES)]] == [
        group_hex[g] for g in GROUPS
    ]
    P.plt.close(fig)
    feats = np.random.default_rng(0).normal(size=(40, 5))
    labels = np.repeat(np.arange(4), 10)
    fig = tsne_figure([("a", feats)], labels, np.array(GROUPS), CLASSES, "t", seed=0)
    group_ax = fig.axes[-1]
    legend = {c.get_label(): to_hex(c.get_facecolor()[0]) for c in group_ax.collections[1:]}
    assert legend == group_hex
    points = [to_hex(c) for c in group_ax.collections[0].get_facecolors()]
    assert points == [group_hex[GROUPS[k]] for k in labels[subsample(40, 2000, 0)]]
    P.plt.close(fig)


@pytest.mark.parametrize("n_classes, named", [(43, True), (60, True), (102, False)])
def test_class_names_on_the_count_chart_where_they_fit(n_classes, named):
    names = [f"class_{i:03d}_with_a_rather_long_name" for i in range(n_classes)]
    counts = np.arange(n_classes, 0, -1) * 3
    groups = np.array(["head"] * 10 + ["medium"] * 20 + ["tail"] * (n_classes - 30))
    fig = P.class_counts_figure(names, counts, groups, "t")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    if named:
        assert len(labels) == n_classes and labels[0].startswith("class_000")
        assert all(len(t) <= 18 for t in labels)
        assert {t.get_rotation() for t in ax.get_xticklabels()} == {90.0}
    else:
        assert labels == [] and ax.get_xlabel().startswith("102 classes")
    P.plt.close(fig)


def test_tsne_is_seeded_opentsne_with_both_arms_side_by_side_and_a_legend():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    feats = rng.normal(size=(40, 6)) + labels[:, None]
    np.testing.assert_array_equal(embed(feats, 0), embed(feats, 0))
    assert not np.array_equal(embed(feats, 0), embed(feats, 1))
    arms = [("balanced", feats), ("exp-r0.1", feats[::-1].copy())]
    fig = tsne_figure(arms, labels, np.array(GROUPS), CLASSES, "t", seed=0)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "balanced, by class",
        "exp-r0.1, by class",
        "balanced, by tier",
        "exp-r0.1, by tier",
    ]
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert [[t.get_text() for t in lg.get_texts()] for lg in legends] == [
        CLASSES,
        ["head", "medium", "tail"],
    ]
    P.plt.close(fig)


def test_tsne_at_102_classes_colours_by_group_with_a_legend():
    assert colour_rows(14) == ["class", "tier"] and colour_rows(102) == ["tier"]
    rng = np.random.default_rng(1)
    labels = np.arange(102).repeat(1)
    groups = np.array(["head"] * 34 + ["medium"] * 34 + ["tail"] * 34)
    feats = rng.normal(size=(102, 8))
    names = [f"c{i}" for i in range(102)]
    fig = tsne_figure([("b", feats), ("i", feats)], labels, groups, names, "t", seed=0)
    assert len(fig.axes) == 2
    legend = fig.axes[1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["head", "medium", "tail"]
    P.plt.close(fig)


def test_report_tsne_puts_each_methods_arms_in_one_figure(tmp_path):
    run, _ = make_run(tmp_path, tsne=True)
    page = R.write_report(run).read_text()
    tsne = section(page, "t-sne-of-test-features")
    assert "t-SNE of simclr (SSL-in-domain), seed 0: balanced | exp-r0.1" in tsne


@pytest.mark.parametrize(
    "result, flag",
    [
        ({"selected": {"epoch": 4, "epochs": 5, "val_balanced_accuracy": 0.5}}, True),
        ({"selected": {"epoch": 4, "val_balanced_accuracy": 0.5}, "epochs": 5}, True),
        ({"selected": {"epoch": 2, "val_balanced_accuracy": 0.5}, "epochs": 5}, False),
        ({"selected": {"epoch": 0, "val_balanced_accuracy": 0.5}, "epochs": 1}, True),
        ({"selected": None, "epochs": 5}, None),
        ({"l2": 0.001}, None),
    ],
)
def test_possibly_undertrained_when_the_best_epoch_is_the_last(result, flag):
    assert T.possibly_undertrained(result) is flag


def test_undertrained_fine_tune_is_a_column_and_a_line(tmp_path):
    run, tables = make_run(tmp_path)
    res = tables["results"]
    res["possibly_undertrained"] = res["representation"] == "simclr_exp-r0.1_s1"
    res.to_csv(run / "tables" / "results.csv", index=False)
    agg = T.aggregate_over_seeds(res.assign(top5=0.0, macro_f1=0.0))
    assert agg["undertrained_seeds"].tolist() == [0, 0, 0, 0, 0, 1]
    page = R.write_report(run).read_text()
    line = (
        "possibly undertrained: linear-balanced of simclr (SSL-in-domain, exp-r0.1, seed 1) "
        "kept its last epoch as the best on validation; more epochs may raise its accuracy."
    )
    assert line in section(page, "collapse-and-failures")
    assert f"Caveat, {line}" in section(page, "headline")
    assert line in (run / "report" / "summary.md").read_text()


def test_fine_tune_records_its_selected_epoch_and_the_number_of_epochs(tmp_path):
    from ssl_robustness.config import validate_config
    from ssl_robustness.data.prepare import prepare_data
    from ssl_robustness.evaluation.finetune import BEST_META, train_classifier
    from ssl_robustness.models.backbones import build_backbone

    cfg = validate_config(tiny_study(tmp_path))
    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    train = data.indices("val")[:40]
    out = tmp_path / "ft"
    scores = train_classifier(
        build_backbone(cfg.backbone, 8),
        data,
        train,
        out,
        images=data.store.images,
        epochs=2,
        batch_size=16,
        lr=0.01,
        weight_decay=0.0,
        backbone_lr_mult=1.0,
        loss="ce",
        sampler="instance",
        freeze_backbone=False,
        seed=0,
        device=torch.device("cpu"),
    )
    best = json.loads((out / BEST_META).read_text())
    assert set(best) == {"epoch", "epochs", "val_balanced_accuracy"}
    assert best["epochs"] == 2 and best["epoch"] in (0, 1)
    assert scores.shape == (len(data.indices("test")), data.num_classes)


def test_classes_at_one_point_are_one_larger_marker_and_methods_sit_side_by_side():
    rows = [
        {"scenario": "SL", "method": "supervised", "class": c, "gap": g, "train_count": n}
        for c, g, n in (("a", 0.2, 10), ("b", 0.2, 10), ("c", 0.0, 20))
    ]
    rows += [{**r, "scenario": "SSL-in-domain", "method": "simclr"} for r in rows]
    df = pd.DataFrame(rows).assign(tier="head", seeds=1)
    fig = P.which_classes_pay_figure(df, "linear-balanced", "exp-r0.1")
    ax = fig.axes[0]
    sl, ssl = ax.collections
    assert sl.get_sizes().tolist() == [32, 16] and len(sl.get_offsets()) == 2
    x_sl, x_ssl = sl.get_offsets()[:, 0], ssl.get_offsets()[:, 0]
    assert (x_sl < [10, 20]).all() and (x_ssl > [10, 20]).all()  # dodged around the count
    np.testing.assert_allclose(x_sl * x_ssl, [100, 400])  # symmetric in log space
    assert ax.get_legend().get_title().get_text() == "marker area: classes at that point"
    fig.canvas.draw()
    assert {t.get_text() for t in ax.get_xticklabels()} >= {"10"}
    P.plt.close(fig)


def test_count_axes_read_as_plain_numbers_with_labels_between_decades():
    counts = (2250 * 0.1 ** (np.arange(43) / 42)).astype(int)
    groups = np.array(["head"] * 14 + ["medium"] * 15 + ["tail"] * 14)
    fig = P.class_counts_figure([f"c{i}" for i in range(43)], counts, groups, "t")
    ax = fig.axes[0]
    fig.canvas.draw()
    shown = {t.get_text() for t in ax.get_yticklabels(minor=False) + ax.get_yticklabels(minor=True)}
    assert {"1000", "500", "2000"} <= shown and not any("10^" in t for t in shown)
    assert "300" not in shown  # only 2s and 5s over a decade
    P.plt.close(fig)


def test_class_colours_put_distinct_hues_first():
    assert P.CLASS_COLORS[:7] == P.METHOD_COLORS
    assert len(set(P.CLASS_COLORS)) == len(P.CLASS_COLORS) == 14


def test_a_class_whose_group_differs_across_seeds_reads_varies():
    rows = per_class_from_predictions()
    moved = (rows["seed"] == SEEDS[-1]) & (rows["class"] == CLASSES[0])
    rows.loc[moved, "tier"] = "tail"  # class_order_per_seed: seed 2 made it rare
    table = class_table(rows, "exp-r0.1", "balanced")
    assert table["tier"].tolist() == ["varies", *GROUPS[1:]]

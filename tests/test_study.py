"""End-to-end study behaviour on the embedded digits, at a size that runs in seconds."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_study
from ssl_robustness import representations
from ssl_robustness.config import validate_config
from ssl_robustness.data.prepare import prepare_data
from ssl_robustness.representations import expand_representations
from ssl_robustness.study import run_study


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp / "broken.pth")
    raw = tiny_study(tmp, imported=[{"name": "in1k-moco", "path": str(tmp / "broken.pth")}])
    cfg = validate_config(raw)
    # the up-front check refuses such a file (tests/test_bad_inputs.py); here it is let through
    # so a representation fails mid-study, as a fault during training would
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("ssl_robustness.study.check_imported", lambda cfg: None)
        result = run_study(cfg, log=lambda *_: None)
    return cfg, result


def test_run_expansion_counts(tmp_path):
    raw = tiny_study(tmp_path, seeds=[0, 1, 2])
    raw["data"]["imbalance"]["sweep"] = [0.5]
    raw["methods"].append({"name": "mocov2"})
    cfg = validate_config(raw)
    data = prepare_data(cfg.data, cfg.out / "data", cfg.evaluation, cfg.seeds)
    specs = expand_representations(cfg, data)
    # 3 methods x 3 subsets (balanced, r=0.2, r=0.5) x 3 seeds + random init x 3 seeds
    assert len(specs) == 3 * 3 * 3 + 3
    assert len({s.key for s in specs}) == len(specs)
    assert {s.scenario for s in specs} == {"SL", "SSL-in-domain", "random-init"}
    assert [p.size for p in data.plans] == [300, 300, 300]


def test_tables_have_the_documented_columns(finished):
    _, result = finished
    t = result.tables
    ok = t.results[t.results["status"] == "ok"]
    # 4 trained representations x (linear, knn, fine-tune on their own subset), and random
    # init with linear and kNN on the probe set plus a fine-tune on each subset
    assert len(ok) == 4 * 3 + 4
    for col in (
        "representation",
        "scenario",
        "method",
        "subset",
        "n",
        "seed",
        "evaluation",
        "top1",
        "top5",
        "balanced_accuracy",
        "macro_f1",
        "head",
        "medium",
        "tail",
        "collapsed",
    ):
        assert col in t.results.columns
    assert set(t.per_class.columns) >= {"class", "train_count", "tier", "accuracy"}
    assert len(t.per_class) == len(ok) * 10
    assert {"top1_mean", "top1_std", "top1_ci95"} <= set(t.aggregate.columns)


def test_gap_arithmetic(finished):
    _, result = finished
    res, gaps = result.tables.results, result.tables.gaps
    for method in ("supervised", "simclr"):
        r = res[(res["method"] == method) & (res["evaluation"] == "linear-balanced")]
        bal = float(r[r["subset"] == "balanced"]["top1"].iloc[0])
        imb = float(r[r["subset"] == "exp-r0.2"]["top1"].iloc[0])
        g = gaps[(gaps["method"] == method) & (gaps["evaluation"] == "linear-balanced")]
        assert g["top1_gap_mean"].iloc[0] == pytest.approx(bal - imb)
        assert g["top1_rel_gap_mean"].iloc[0] == pytest.approx((bal - imb) / bal)


def test_failed_run_is_reported_and_the_rest_finished(finished):
    cfg, result = finished
    assert [f["representation"] for f in result.failures] == ["in1k-moco_none_s0"]
    assert "not a ResNet" in result.failures[0]["error"]  # a lone conv1.weight, no blocks
    page = result.report.read_text()
    assert "FAILED in1k-moco_none_s0" in page
    summary = (cfg.out / "report" / "summary.md").read_text()
    assert "FAILED in1k-moco_none_s0" in summary


def test_report_sections_and_embedded_images(finished):
    cfg, result = finished
    page = result.report.read_text()
    for section in (
        "headline",
        "data",
        "balanced-vs-imbalanced-gap",
        "accuracy-by-tier",
        "which-classes-pay",
        "t-sne-of-test-features",
        "collapse-and-failures",
        "reproducibility",
    ):
        assert f"<section id='{section}'>" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 5 and all(len(i) > 1000 for i in images)
    assert "http" not in page.replace("http-equiv", "")  # opens offline
    assert "seeds [0]" in page and "torch" in page
    headline = page.split("<section id='headline'>")[1].split("</section>")[0]
    assert re.search(r"supervised \(SL\) (loses|gains) \d+\.\d points", headline)
    assert re.search(r"simclr \(SSL-in-domain\) (loses|gains) \d+\.\d points", headline)
    for f in ("results", "per_class", "aggregate", "gaps"):
        assert (cfg.out / "tables" / f"{f}.parquet").exists()
        pd.read_parquet(cfg.out / "tables" / f"{f}.parquet")


def test_second_run_trains_nothing(finished, monkeypatch):
    cfg, first = finished

    def no_training(*args, **kwargs):
        raise AssertionError("a cached representation was trained again")

    monkeypatch.setattr(representations, "fit", no_training)
    monkeypatch.setattr("ssl_robustness.evaluation.finetune.fit", no_training)
    monkeypatch.setattr("ssl_robustness.study.check_imported", lambda cfg: None)  # as above
    again = run_study(cfg, log=lambda *_: None)
    cols = ["representation", "evaluation", "top1"]
    a = first.tables.results.dropna(subset=["top1"])[cols].reset_index(drop=True)
    b = again.tables.results.dropna(subset=["top1"])[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_interrupted_study_resumes(tmp_path, monkeypatch):
    raw = tiny_study(tmp_path, methods=[{"name": "simclr"}], random_init=False)
    raw["pretrain"]["epochs"] = 3
    raw["evaluation"] = {
        "linear": {"train_on": ["balanced"], "l2_grid": [1e-3]},
        "knn": {"enabled": False},
        "finetune": {"enabled": False},
    }
    cfg = validate_config(raw)
    import ssl_robustness.engine.loop as loop

    real_save, calls = loop.save_checkpoint, []

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_study(cfg, log=lambda *_: None)
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    result = run_study(cfg, log=lambda *_: None)
    assert not result.failures and len(result.tables.results) == 2
    rep_dirs = sorted((cfg.out / "representations").iterdir())
    first = rep_dirs[0] / "train" / "epochs.csv"
    epochs = pd.read_csv(first)["epoch"].tolist()
    assert epochs == [0, 1, 2]  # resumed at epoch 2, nothing redone or duplicated
    assert np.isfinite(result.tables.results["top1"]).all()


def test_report_command_rebuilds_from_tables(finished):
    from click.testing import CliRunner

    from ssl_robustness.cli import cli

    cfg, result = finished
    result.report.unlink()
    out = CliRunner().invoke(cli, ["report", str(cfg.out)])
    assert out.exit_code == 0, out.output
    assert result.report.exists() and "FAILED in1k-moco_none_s0" in result.report.read_text()


def test_the_plan_of_a_finished_study_counts_its_evaluations_left(finished):
    """A cached representation whose evaluation never finished (interrupted between two, or a
    kind added since) still has work: the plan counts it, keyed as the run keys it (with the
    study's augmentation: without it every fine-tune read as unfinished)."""
    import shutil

    from ssl_robustness.evaluation.outputs import METRICS_FILE
    from ssl_robustness.plan import plan_rows

    cfg, _ = finished
    data = prepare_data(cfg.data, cfg.out / "data", cfg.evaluation, cfg.seeds)
    trained = [r for r in plan_rows(cfg, data) if r.status == "done" and r.scenario == "SL"]
    assert trained and all(r.evaluations_left == 0 and r.left == 0 for r in trained)
    row = trained[0]
    metrics = next(
        (cfg.out / "representations" / row.key / "eval").glob(f"finetune*/{METRICS_FILE}")
    )
    kept = metrics.with_suffix(".kept")
    shutil.move(metrics, kept)
    try:
        again = next(r for r in plan_rows(cfg, data) if r.key == row.key)
        assert again.evaluations_left == 1 and again.left > 0 and again.frozen_passes > 0
    finally:
        shutil.move(kept, metrics)

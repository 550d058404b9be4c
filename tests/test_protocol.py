"""The study protocol: what each gap compares is matched (docs/design.md, section 1)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import tiny_study
from ssl_robustness.config import validate_config
from ssl_robustness.data.prepare import prepare_data
from ssl_robustness.errors import UserError
from ssl_robustness.evaluation.run import (
    evaluate_representation,
    evaluation_jobs,
    evaluation_specs,
)
from ssl_robustness.models.backbones import build_backbone
from ssl_robustness.report.tables import gap_tables
from ssl_robustness.study import run_study


def _data(tmp_path, **overrides):
    cfg = validate_config(tiny_study(tmp_path, **overrides))
    return cfg, prepare_data(cfg.data, cfg.out / "data", cfg.evaluation, cfg.seeds)


def test_probe_set_is_disjoint_from_every_subset_of_every_seed(tmp_path):
    cfg, data = _data(tmp_path, seeds=[0, 1, 2])
    probe = set(data.probe_balanced.tolist())
    counts = np.bincount(data.labels[data.probe_balanced], minlength=10)
    assert counts.min() == counts.max() > 0  # balanced
    for seed in cfg.seeds:
        for idx in data.draw(seed).subsets.values():
            assert probe.isdisjoint(idx.tolist())
    stats = json.loads((cfg.out / "data" / "stats.json").read_text())
    assert stats["probe_balanced"]["protocol"] == "disjoint"
    for seed in ("0", "1", "2"):
        assert all(sum(v) == 0 for v in stats["probe_overlap"][seed].values())


def test_probe_size_that_cannot_be_disjoint_names_the_largest_that_can(tmp_path):
    cfg, data = _data(tmp_path)
    pool = np.bincount(data.labels[data.indices("train")], minlength=10)
    # which classes are rare is drawn per seed (equal pools), so every class must keep room
    # for the head's count in some seed
    assert data.class_order.per_seed
    need = np.max([p.counts for p in data.plans])
    largest = int((pool - need).min())
    assert len(data.probe_balanced) == 10 * largest  # the default: the largest disjoint set
    with pytest.raises(UserError, match=rf"probe_per_class.*largest disjoint size is {largest}"):
        _data(tmp_path, **{"evaluation.probe_per_class": largest + 1})


def test_pool_protocol_is_liu_et_al_and_reports_its_overlap(tmp_path):
    over = {"evaluation.probe_set": "pool", "data.imbalance.resample_per_seed": False}
    cfg, data = _data(tmp_path, **over)
    pool = np.bincount(data.labels[data.indices("train")], minlength=10)
    assert len(data.probe_balanced) == 10 * pool.min()
    stats = json.loads((cfg.out / "data" / "stats.json").read_text())
    overlap = stats["probe_overlap"]["0"]
    assert sum(overlap["balanced"]) == 300  # the whole balanced subset is in the probe set
    assert stats["probe_balanced"]["protocol"] == "pool"
    cfg, data = _data(tmp_path / "r", **{"evaluation.probe_set": "pool"})
    stats = json.loads((cfg.out / "data" / "stats.json").read_text())
    assert 0 < sum(stats["probe_overlap"]["0"]["exp-r0.2"]) < 300


def test_seeds_draw_their_own_nested_subsets_with_fixed_val_test_probe(tmp_path):
    _, data = _data(tmp_path, seeds=[0, 1])
    a, b = data.draw(0), data.draw(1)
    # the same profile in both seeds; which classes are rare is drawn per seed (equal pools)
    assert [sorted(p.counts.tolist()) for p in a.plans] == [
        sorted(p.counts.tolist()) for p in b.plans
    ]
    for name in a.subsets:
        assert not np.array_equal(a.subsets[name], b.subsets[name])
    for d in (a, b):  # within a seed, per class, the smaller subset is inside the larger
        bal, imb = d.subsets["balanced"], d.subsets["exp-r0.2"]
        for k in range(10):
            small, big = sorted((set(s[data.labels[s] == k].tolist()) for s in (bal, imb)), key=len)
            assert small <= big
    _, fixed = _data(tmp_path / "f", seeds=[0, 1], **{"data.imbalance.resample_per_seed": False})
    for name in fixed.draw(0).subsets:
        assert np.array_equal(fixed.draw(0).subsets[name], fixed.draw(1).subsets[name])


def test_class_order_can_be_drawn_per_seed(tmp_path):
    imb = {"profile": "exp", "ratio": 0.2, "n": 300, "class_order": "random"}
    _, data = _data(tmp_path, seeds=[0, 1, 2, 3], **{"data.imbalance": imb})
    assert len({tuple(data.draw(s).plans[1].counts) for s in range(4)}) == 1
    imb["class_order_per_seed"] = True
    _, data = _data(tmp_path / "o", seeds=[0, 1, 2, 3], **{"data.imbalance": imb})
    rarest = {int(np.argmin(data.draw(s).plans[1].counts)) for s in range(4)}
    assert len(rarest) > 1


def test_each_evaluation_adapts_on_what_its_comparison_needs(tmp_path):
    raw = tiny_study(tmp_path)
    raw["evaluation"]["linear"]["train_on"] = ["balanced", "own", "imbalanced"]
    raw["evaluation"]["finetune"]["train_on"] = ["own", "imbalanced"]
    cfg = validate_config(raw)
    data = prepare_data(cfg.data, cfg.out / "data", cfg.evaluation)
    specs = evaluation_specs(cfg.evaluation)
    d = data.draw(0)
    trained = {(j.spec.name, j.adapt_on): j for j in evaluation_jobs(specs, data, 0, "balanced")}
    assert trained["linear-balanced", "probe-balanced"].comparison == "pretraining"
    assert trained["knn-k5", "probe-balanced"].comparison == "pretraining"
    own = trained["finetune-own", "balanced"]
    assert own.comparison == "end-to-end" and np.array_equal(own.indices, d.subsets["balanced"])
    cross = trained["finetune-imbalanced", "exp-r0.2"]
    assert cross.comparison == "cross-scenario" and cross.arm == "balanced"
    fixed = evaluation_jobs(specs, data, 0, None)
    fixed_own = [j for j in fixed if j.spec.name == "finetune-own"]
    assert [(j.arm, j.comparison) for j in fixed_own] == [
        ("balanced", "fixed-representation"),
        ("exp-r0.2", "fixed-representation"),
    ]
    assert [j.arm for j in fixed if j.spec.name == "linear-balanced"] == [None]


def _row(method, subset, comparison, seed, top1, scenario="SL", evaluation="e"):
    return {
        "scenario": scenario,
        "method": method,
        "subset": subset,
        "evaluation": evaluation,
        "comparison": comparison,
        "seed": seed,
        "level": 1.0 if subset == "balanced" else 0.1,
        "matched": True,
        "top1": top1,
        **{m: top1 for m in ("balanced_accuracy", "head", "medium", "tail")},
    }


def test_gaps_only_where_the_arms_differ_in_balance_alone():
    rows = [
        _row("sl", "balanced", "pretraining", 0, 0.8),
        _row("sl", "exp-r0.1", "pretraining", 0, 0.6),
        _row("sl", "balanced", "cross-scenario", 0, 0.7),
        _row("sl", "exp-r0.1", "cross-scenario", 0, 0.6),
        _row("rand", "balanced", "fixed-representation", 0, 0.5, "random-init"),
        _row("rand", "exp-r0.1", "fixed-representation", 0, 0.4, "random-init"),
        _row("rand", "-", "pretraining", 0, 0.3, "random-init"),
    ]
    runs, gaps = gap_tables(pd.DataFrame(rows), "balanced")
    got = {(r.method, r.comparison): r.top1_gap for r in runs.itertuples()}
    assert got == {
        ("sl", "pretraining"): pytest.approx(0.2),
        ("rand", "fixed-representation"): pytest.approx(0.1),
    }
    assert runs.loc[runs["method"] == "sl", "top1_rel_gap"].iloc[0] == pytest.approx(0.25)


def test_a_rebuilt_finetune_gives_the_same_numbers(tmp_path):
    cfg, data = _data(tmp_path)
    cfg.evaluation.linear.enabled = cfg.evaluation.knn.enabled = False
    backbone = build_backbone(cfg.backbone, cfg.data.image_size)
    rep = tmp_path / "rep"

    def run():
        ((job, out, _),) = list(
            evaluate_representation(
                backbone, data, cfg.evaluation, rep, 0, torch.device("cpu"), subset="exp-r0.2"
            )
        )
        return out, pd.read_csv(out / "predictions.csv")

    out, first = run()
    torch.manual_seed(12345)  # a different global random state, as in a resumed process
    np.random.seed(999)
    import shutil

    shutil.rmtree(out)
    _, again = run()
    pd.testing.assert_frame_equal(first, again)


def test_changing_the_grouping_regroups_every_number(tmp_path):
    raw = tiny_study(tmp_path, methods=[{"name": "supervised"}], random_init=False)
    raw["pretrain"]["epochs"] = 1
    raw["evaluation"] = {"knn": {"enabled": False}, "finetune": {"enabled": False}}
    raw["report"] = {"tsne": False}
    raw["data"]["tiers"] = {"rule": "oltr"}
    first = run_study(validate_config(raw), log=lambda *_: None).tables
    raw["data"]["tiers"] = {"rule": "thirds"}
    second = run_study(validate_config(raw), log=lambda *_: None).tables
    pc = second.per_class[second.per_class["representation"] == "supervised_exp-r0.2_s0"]
    pc = pc[pc["evaluation"] == "linear-balanced"]
    counts = pc["train_count"].to_numpy()
    head = pc["class"].to_numpy()[np.argsort(-counts, kind="stable")[:4]]
    assert set(pc.loc[pc["tier"] == "head", "class"]) == set(head)
    row = second.results[
        (second.results["representation"] == "supervised_exp-r0.2_s0")
        & (second.results["evaluation"] == "linear-balanced")
    ]
    expected = pc.loc[pc["tier"] == "head", "accuracy"].mean()
    assert row["head"].iloc[0] == pytest.approx(expected)
    assert not first.per_class["tier"].equals(second.per_class["tier"])


def test_full_natural_set_is_trained_but_has_no_gap(tmp_path):
    imb = {"profile": "natural", "full_natural": True}
    _, data = _data(tmp_path, **{"data.imbalance": imb})
    plans = data.plans
    assert [p.name for p in plans] == ["balanced", "natural", "natural-full"]
    assert not plans[2].matched
    assert plans[2].size == len(data.draw(0).subsets["natural-full"]) > plans[1].size


def test_truncated_outputs_are_rebuilt_not_failed(tmp_path):
    raw = tiny_study(tmp_path, methods=[{"name": "supervised"}], random_init=False)
    raw["pretrain"]["epochs"] = 1
    raw["evaluation"] = {"knn": {"enabled": False}, "finetune": {"enabled": False}}
    raw["report"] = {"tsne": False}
    cfg = validate_config(raw)
    first = run_study(cfg, log=lambda *_: None)
    rep = next(p for p in (cfg.out / "representations").iterdir() if "exp" in p.name)
    backbone = rep / "backbone.pt"
    backbone.write_bytes(backbone.read_bytes()[:100])
    ev = next((rep / "eval").iterdir())
    (ev / "metrics.json").write_text('{"metrics": {"top1": ')
    preds = ev / "predictions.csv"
    preds.write_text("\n".join(preds.read_text().splitlines()[:5]))
    again = run_study(cfg, log=lambda *_: None)
    assert not again.failures
    cols = ["representation", "evaluation", "top1", "head", "tail"]
    pd.testing.assert_frame_equal(first.tables.results[cols], again.tables.results[cols])


def test_imported_backbone_sees_images_at_its_own_input_size(tmp_path, monkeypatch):
    import torchvision

    weights = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    raw = tiny_study(tmp_path, methods=[], random_init=False)
    raw["imported"] = [{"name": "in1k", "path": str(weights), "image_size": 32}]
    raw["evaluation"] = {"knn": {"enabled": False}, "finetune": {"enabled": False}}
    raw["report"] = {"tsne": False}
    cfg = validate_config(raw)
    seen, events = [], []
    import ssl_robustness.data.store.image_store as image_store
    import ssl_robustness.evaluation.features as features

    real, real_decode = features.extract_features, image_store.build_image_cache

    def spy(backbone, images, indices, device, batch_size=512):
        seen.append(images.shape[1:])
        events.append("features")
        return real(backbone, images, indices, device, batch_size)

    def decode(lset, indices, size, *args, **kwargs):
        events.append(f"decode {size}px")
        return real_decode(lset, indices, size, *args, **kwargs)

    monkeypatch.setattr(features, "extract_features", spy)
    monkeypatch.setattr(image_store, "build_image_cache", decode)
    result = run_study(cfg, log=lambda *_: None)
    assert not result.failures
    assert list((cfg.out / "data").glob("images-*-32px.npy"))
    # decoded at its size before the representation runs, not midway through an evaluation
    assert events[0] == "decode 32px" and events.count("decode 32px") == 1
    assert seen and set(seen) == {(32, 32, 3)}  # not the study's 8 px


def test_an_unbalanced_official_test_split_is_reported_as_such(tmp_path):
    from conftest import write_image
    from ssl_robustness.data.stats import stats_lines

    root = tmp_path / "official"
    for c, (train, test) in enumerate({"ant": (24, 6), "bee": (20, 3), "cat": (18, 2)}.values()):
        name = ["ant", "bee", "cat"][c]
        for i in range(train):
            write_image(root / "train" / name / f"{i}.png", 100 * c + i)
        for i in range(test):
            write_image(root / "test" / name / f"{i}.png", 1000 + 100 * c + i)
    raw = tiny_study(tmp_path, **{"data.source": "folder", "data.root": str(root)})
    raw["data"]["imbalance"] = {"profile": "exp", "ratio": 0.5}
    raw["data"]["split"] = {"val_per_class": 2}
    cfg = validate_config(raw)
    data = prepare_data(cfg.data, cfg.out / "data", cfg.evaluation, cfg.seeds)
    assert not data.test_balanced
    assert "test split: NOT balanced (2..6 per class)" in "\n".join(stats_lines(data, 0))
    stats = json.loads((cfg.out / "data" / "stats.json").read_text())
    assert stats["test_balanced"] is False


def test_default_n_fits_every_level_when_pools_differ():
    from ssl_robustness.config import ImbalanceConfig
    from ssl_robustness.data.subsets.plans import plan_subsets

    plans = plan_subsets(np.array([14, 10, 8]), ImbalanceConfig(profile="exp", ratio=0.5))
    assert [p.counts.tolist() for p in plans] == [[8, 8, 8], [11, 8, 5]]


def test_trained_representations_are_measured_against_the_random_init_floor():
    from ssl_robustness.report.tables import with_floor
    from ssl_robustness.report.verdict_words import near_floor

    def row(scenario, subset, evaluation, comparison, top1, rep):
        return {
            "representation": rep,
            "scenario": scenario,
            "subset": subset,
            "seed": 0,
            "evaluation": evaluation,
            "comparison": comparison,
            "status": "ok",
            "top1": top1,
        }

    rows = [
        row("random-init", "-", "linear-balanced", "pretraining", 0.30, "rand"),
        row("random-init", "exp-r0.1", "linear-own", "fixed-representation", 0.20, "rand"),
        row("random-init", "balanced", "linear-own", "fixed-representation", 0.25, "rand"),
        row("SL", "exp-r0.1", "linear-balanced", "pretraining", 0.50, "sl"),
        row("SSL-in-domain", "exp-r0.1", "linear-balanced", "pretraining", 0.32, "ssl"),
        row("SSL-in-domain", "exp-r0.1", "linear-own", "end-to-end", 0.21, "ssl"),
    ]
    out = with_floor(pd.DataFrame(rows))
    assert out["floor_top1"].tolist()[3:] == pytest.approx([0.30, 0.30, 0.20])
    assert out["over_floor"].tolist()[3:] == pytest.approx([0.20, 0.02, 0.01])
    assert out["floor_top1"].iloc[:3].isna().all()
    lines = near_floor(out)
    assert len(lines) == 2 and all(line.startswith("ssl on ") for line in lines)
    assert "+2.0 points" in lines[0]

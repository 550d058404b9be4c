"""Every phase's wall time is recorded where it ran, and report/cost.py builds the cost rows
from the run directory's files alone."""

import json

import pytest

from conftest import tiny_study
from ssl_robustness.config import validate_config
from ssl_robustness.report.cost import CostRow, cost_lines, cost_rows, cost_summary
from ssl_robustness.study import run_study

EVALS = {"evaluation linear-balanced", "evaluation knn-k5"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("phases")
    raw = tiny_study(
        tmp,
        **{
            "methods": [{"name": "supervised"}],
            "pretrain.epochs": 1,
            "evaluation.finetune": {"enabled": False},
        },
    )
    cfg = validate_config(raw)
    run_study(cfg, log=lambda *_: None)
    return cfg


def _infos(cfg):
    reps = sorted(cfg.layout.representations.iterdir())
    return {p.name: json.loads((p / "representation.json").read_text()) for p in reps}


def test_representation_json_carries_every_phase(study):
    infos = _infos(study)
    assert len(infos) == 3  # supervised on the balanced and imbalanced subsets, random init
    for name, info in infos.items():
        setup = "init" if name.startswith("random-init") else "pretraining"
        assert set(info["phases"]) == {setup, "features", *EVALS}
        assert info["phases"][setup] == round(info["seconds"], 3)
        assert all(s >= 0 for s in info["phases"].values())
        assert info["phases"]["features"] > 0  # extracted in this run


def test_each_evaluation_records_its_seconds_in_metrics(study):
    for rep in study.layout.representations.iterdir():
        phases = json.loads((rep / "representation.json").read_text())["phases"]
        for metrics in (rep / "eval").glob("*/metrics.json"):
            record = json.loads(metrics.read_text())
            label = "linear-balanced" if record["kind"] == "linear" else "knn-k5"
            assert record["seconds"] == phases[f"evaluation {label}"]


def test_decode_time_is_recorded_beside_the_image_cache(study):
    metas = list(study.layout.data.path.glob("images-*.meta.json"))
    assert len(metas) == 1
    assert json.loads(metas[0].read_text())["seconds"] >= 0


def test_a_cached_rerun_keeps_the_recorded_times(study):
    before = _infos(study)
    run_study(study, log=lambda *_: None)
    assert _infos(study) == before  # nothing re-extracted or re-evaluated, nothing added


def test_cost_rows_from_the_study_directory(study):
    rows = cost_rows(study.out)
    assert rows[0].phase == "decode" and rows[0].representation == ""
    phases = sorted((r.phase, r.evaluation) for r in rows[1:])
    assert phases == sorted(
        [("pretraining", "")] * 2
        + [("init", "")]
        + [("features", "")] * 3
        + [("evaluation", e) for e in ("linear-balanced", "knn-k5")] * 3
    )


def _write(path, record):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_cost_rows_and_summary_of_a_hand_made_run_dir(tmp_path):
    reps = tmp_path / "representations"
    _write(tmp_path / "data" / "images-abc-32px.meta.json", {"version": 2, "seconds": 4.5})
    _write(
        reps / "simclr_imb_s0-1234abcd" / "representation.json",
        {"seconds": 99.0, "phases": {"pretraining": 60.0, "features": 6.0, "evaluation knn": 2}},
    )
    _write(reps / "old_none_s0-99999999" / "representation.json", {"seconds": 10.0})
    _write(reps / "broken_none_s0-00000000" / "representation.json", {"seconds": "x"})
    (reps / "todo_none_s0-11111111").mkdir()  # not done: no record, no row
    assert cost_rows(tmp_path) == [
        CostRow("decode", "", "", 4.5),
        CostRow("pretraining", "old_none_s0", "", 10.0),
        CostRow("pretraining", "simclr_imb_s0", "", 60.0),
        CostRow("features", "simclr_imb_s0", "", 6.0),
        CostRow("evaluation", "simclr_imb_s0", "knn", 2.0),
    ]
    assert cost_summary(cost_rows(tmp_path)) == [
        {"phase": "pretraining", "seconds": 70.0, "share": 70.0 / 82.5},
        {"phase": "features", "seconds": 6.0, "share": 6.0 / 82.5},
        {"phase": "decode", "seconds": 4.5, "share": 4.5 / 82.5},
        {"phase": "evaluation", "seconds": 2.0, "share": 2.0 / 82.5},
    ]
    assert cost_lines(cost_rows(tmp_path)) == [
        "pretraining       1.2 min   84.8%",
        "features          0.1 min    7.3%",
        "decode            0.1 min    5.5%",
        "evaluation        0.0 min    2.4%",
    ]


def test_cost_rows_of_a_missing_run_dir_are_empty(tmp_path):
    assert cost_rows(tmp_path / "nowhere") == []
    assert cost_summary([]) == []


def test_the_report_and_the_plan_show_where_the_time_went(study):
    from ssl_robustness.data.prepare import list_data
    from ssl_robustness.plan import plan_lines, plan_rows
    from ssl_robustness.report.content import cost_table

    table = cost_table(study.out)
    total = sum(r.seconds for r in cost_rows(study.out))
    assert list(table.columns) == ["phase", "minutes", "share %"]
    assert table["minutes"].sum() * 60 == pytest.approx(total, rel=1e-6)
    assert table["share %"].sum() == pytest.approx(100.0)
    assert list(table["minutes"]) == sorted(table["minutes"], reverse=True)
    html = study.layout.report_html.read_text()
    assert "Where the time went" in html and "pretraining" in html.split("Where the time went")[1]

    data = list_data(study.data, study.layout.data.path, study.evaluation)
    lines = plan_lines(study, plan_rows(study, data))
    at = lines.index("wall time recorded so far, by phase:")
    assert [x.split()[0] for x in lines[at + 1 :]] == list(table["phase"])

"""The confirmatory test is registered before any result exists, and the report reads it from
the registration, never from a config that may have been edited after the results."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_report import make_run, section

from conftest import tiny_study
from ssl_robustness import study
from ssl_robustness.config import validate_config
from ssl_robustness.errors import UserError
from ssl_robustness.registration import check_confirmatory
from ssl_robustness.report import render as R
from ssl_robustness.report.headline import headline_lines


class _Stop(Exception):
    pass


def test_registration_is_written_before_the_first_training(tmp_path, monkeypatch):
    cfg = validate_config(tiny_study(tmp_path, seeds=[0, 1]))
    seen = {}

    def first_training(specs, cfg, *args, **kwargs):
        seen["registration"] = json.loads(cfg.layout.registration.read_text())
        raise _Stop

    monkeypatch.setattr(study, "run_specs", first_training)
    with pytest.raises(_Stop):
        study.run_study(cfg, log=lambda *_: None)
    reg = seen["registration"]
    assert reg["before_any_result"] is True
    assert reg["confirmatory"] == {
        "evaluation": "linear-balanced",
        "comparison": "pretraining",
        "subsets": ["exp-r0.2"],
        "measure": "rel_gap",
        "metric": "top1",
        "sl_comparator": "supervised",
        "against": "one",
    }
    assert reg["seeds"] == [0, 1] and reg["alpha"] == 0.05
    assert reg["near_floor_rule"] == {"arm": "balanced", "margin_points": 3.0}
    assert reg["effect_of_interest_points"] == 5.0 and reg["amendments"] == []

    # a later run with a seed added after results existed keeps the registration and amends it
    done = cfg.layout.representation("supervised_balanced_s0-abc").done
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    more = validate_config(tiny_study(tmp_path, seeds=[0, 1, 2]))
    with pytest.raises(_Stop):
        study.run_study(more, log=lambda *_: None)
    again = json.loads(cfg.layout.registration.read_text())
    assert again["registered_at"] == reg["registered_at"] and again["seeds"] == [0, 1]
    [amendment] = again["amendments"]
    assert amendment["seeds"] == [0, 1, 2] and amendment["results_existed"] is True


@pytest.mark.parametrize(
    "override, message",
    [
        (
            {"report.confirmatory.evaluation": "linear-balancd"},
            "report.confirmatory.evaluation: 'linear-balancd' is not an evaluation of this study",
        ),
        (
            {"report.confirmatory.comparison": "end-to-end"},
            "report.confirmatory.comparison: linear-balanced adapts on 'balanced' and gives "
            "pretraining gaps, not 'end-to-end'",
        ),
        (
            {"report.confirmatory.evaluation": "knn-k5", "report.confirmatory.comparison": "x"},
            None,  # a comparison outside the literal is a config error already
        ),
        (
            {"report.confirmatory.sl_comparator": "supervised-ldam_drw"},
            "report.confirmatory.sl_comparator: 'supervised-ldam_drw' is not an SL variant of "
            "this study; its SL variants are ['supervised']",
        ),
        (
            {
                "methods": [
                    {"name": "supervised", "loss": "cb"},
                    {"name": "supervised", "loss": "ldam_drw"},
                    {"name": "simclr"},
                ]
            },
            "trains no plain 'supervised' baseline and several SL variants",
        ),
    ],
)
def test_a_confirmatory_block_the_study_cannot_test_is_refused_before_any_work(
    tmp_path, override, message
):
    raw = tiny_study(tmp_path, **override)
    if message is None:
        with pytest.raises(UserError):
            validate_config(raw)
        return
    cfg = validate_config(raw)
    with pytest.raises(UserError, match="report.confirmatory") as err:
        check_confirmatory(cfg)
    assert message in str(err.value)
    assert not cfg.out.exists()  # nothing written


def _register(run, **confirmatory):
    block = {
        "evaluation": "linear-balanced",
        "comparison": "pretraining",
        "subsets": ["exp-r0.1"],
        "measure": "rel_gap",
        "metric": "top1",
        "sl_comparator": "supervised",
        "against": "one",
        **confirmatory,
    }
    reg = {
        "registered_at": "2026-12-07T10:00:00+00:00",
        "before_any_result": True,
        "confirmatory": block,
        "alpha": 0.05,
        "seeds": [0, 1, 2],
        "equivalence_margin_points": None,
        "amendments": [],
    }
    (run / "registration.json").write_text(json.dumps(reg))
    return reg


def test_the_report_tests_the_registered_comparator_and_says_so(tmp_path):
    run, _ = make_run(tmp_path)
    _register(run, sl_comparator="supervised-balanced_softmax")
    R.write_report(run)
    tests = pd.read_csv(run / "report" / "tests.csv")
    family = tests[tests["family"] == "confirmatory"]
    assert family["sl_method"].tolist() == ["supervised-balanced_softmax"]
    head = section((run / "report" / "report.html").read_text(), "headline")
    assert (
        "Registered before any result (2026-12-07T10:00:00+00:00): linear-balanced, pretraining "
        "gap, against supervised-balanced_softmax" in head
    )
    assert "reported as registered." in head


def test_a_config_edited_after_the_results_does_not_change_the_confirmatory_test(tmp_path):
    run, _ = make_run(tmp_path)
    _register(run)
    config = {"name": "synthetic", "seeds": [0, 1, 2]}
    config["report"] = {"tsne": False, "confirmatory": {"evaluation": "knn-k20"}}
    import yaml

    (run / "config.yaml").write_text(yaml.safe_dump(config))
    lines = headline_lines(run)
    assert "the config now says knn-k20, pretraining gap" in lines[0]  # said in the bottom line
    assert lines[1].startswith("Registered before any result")
    assert "reported with departures" in lines[1]
    assert any(line.startswith("Confirmatory comparison: linear-balanced") for line in lines)
    R.write_report(run)
    tests = pd.read_csv(run / "report" / "tests.csv")
    confirmatory = tests[tests["family"] == "confirmatory"]
    assert set(confirmatory["evaluation"]) == {"linear-balanced"}


def test_seeds_added_after_results_are_said_on_the_first_line(tmp_path):
    run, _ = make_run(tmp_path)
    reg = _register(run)
    reg["seeds"] = [0, 1]
    reg["amendments"] = [{"at": "2026-12-08", "results_existed": True, "seeds": [0, 1, 2]}]
    (run / "registration.json").write_text(json.dumps(reg))
    line = headline_lines(run)[1]
    assert "seeds 2 were added on 2026-12-08 after results existed" in line


def test_registered_seeds_without_results_are_said(tmp_path):
    run, _ = make_run(tmp_path)
    reg = _register(run)
    reg["seeds"] = [0, 1, 2, 3]
    (run / "registration.json").write_text(json.dumps(reg))
    line = headline_lines(run)[1]
    assert "registered seed 3 has no results in these tables" in line


def test_seeds_dropped_after_results_are_a_departure(tmp_path):
    run, _ = make_run(tmp_path)
    reg = _register(run)
    reg["seeds"] = [0, 1, 2, 3, 4]
    reg["amendments"] = [{"at": "2026-12-08", "results_existed": True, "seeds": [0, 1, 2]}]
    (run / "registration.json").write_text(json.dumps(reg))
    line = headline_lines(run)[1]
    assert "seeds 3, 4 were dropped on 2026-12-08 after results existed" in line
    assert "reported as registered" not in line


def test_a_registration_changed_before_any_result_replaces_the_old_one(tmp_path, monkeypatch):
    monkeypatch.setattr(study, "run_specs", lambda *a, **k: (_ for _ in ()).throw(_Stop()))
    cfg = validate_config(tiny_study(tmp_path, seeds=[0]))
    with pytest.raises(_Stop):
        study.run_study(cfg, log=lambda *_: None)
    again = validate_config(tiny_study(tmp_path, seeds=[0, 1]))
    with pytest.raises(_Stop):
        study.run_study(again, log=lambda *_: None)
    reg = json.loads(cfg.layout.registration.read_text())
    assert reg["seeds"] == [0, 1] and reg["amendments"] == [] and reg["before_any_result"]


def test_a_default_block_on_a_study_without_its_evaluation_registers_no_test(tmp_path):
    """Only a declared block is refused; the default names Liu et al.'s probe, and a study that
    does not run it has every comparison exploratory (the report says so)."""
    cfg = validate_config(tiny_study(tmp_path, **{"evaluation.linear.enabled": False}))
    check_confirmatory(cfg)  # no error
    declared = tiny_study(
        tmp_path,
        **{"evaluation.linear.enabled": False, "report.confirmatory": {"evaluation": "knn-k5"}},
    )
    check_confirmatory(validate_config(declared))  # knn-k5 exists: fine

"""An evaluation is one file: its settings (a new `evaluation.<kind>` key) and its code,
registered by its settings class. A kind defined in one new file shows up in config validation,
`--plan` and the tables; the built-in kinds keep the directories of earlier runs."""

import importlib.util
import sys
import textwrap

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from conftest import tiny_study
from ssl_robustness.cli import cli
from ssl_robustness.config import evaluation_kind_types, validate_config
from ssl_robustness.data.prepare import prepare_data
from ssl_robustness.errors import UserError
from ssl_robustness.evaluation.kinds import evaluation_specs
from ssl_robustness.evaluation.registry import kind_of, unregister_evaluation
from ssl_robustness.evaluation.run import evaluation_jobs
from ssl_robustness.plan import plan_rows
from ssl_robustness.representations import expand_representations
from ssl_robustness.study import run_study

# the whole new evaluation, as one file: settings and code
PLUGIN = textwrap.dedent(
    '''
    """Nearest class mean on frozen features: an evaluation kind in one file."""

    from typing import ClassVar

    import numpy as np
    from pydantic import Field

    from ssl_robustness.config import EvaluationSettings
    from ssl_robustness.evaluation.registry import (
        EvaluationKind,
        EvaluationSpec,
        Outcome,
        register_evaluation,
    )


    class CentroidConfig(EvaluationSettings):
        kind: ClassVar[str] = "centroid"
        summary: ClassVar[str] = "Nearest class mean on frozen features."
        enabled: bool = False
        """Run the nearest-class-mean classifier."""
        shrink: float = Field(0.0, ge=0, le=1)
        """Pull each class mean this far towards the mean of all means."""


    @register_evaluation(CentroidConfig)
    class Centroid(EvaluationKind):
        reads = ("adapt", "test")

        def specs(self, s, study):
            return [EvaluationSpec("centroid", "balanced", s, {"shrink": s.shrink})]

        def run(self, job, ctx):
            x = ctx.adapt_features(job.indices)
            y = ctx.data.labels[job.indices]
            means = np.stack([x[y == c].mean(0) for c in range(ctx.data.num_classes)])
            s = job.spec.settings.shrink
            means = (1 - s) * means + s * means.mean(0)
            test = ctx.split_features("test")
            return Outcome(-((test[:, None, :] - means[None]) ** 2).sum(-1), {"shrink": s})
    '''
)


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "centroid.py"
    path.write_text(PLUGIN)
    spec = importlib.util.spec_from_file_location("centroid_plugin", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["centroid_plugin"] = module
    spec.loader.exec_module(module)
    yield module
    unregister_evaluation(module.CentroidConfig)  # its code and its config key
    assert "centroid" not in evaluation_kind_types()
    del sys.modules["centroid_plugin"]


def test_builtin_kinds_are_registered_in_their_order():
    assert list(evaluation_kind_types()) == ["linear", "linear_sgd", "knn", "finetune"]
    cfg = validate_config(tiny_study(__import__("pathlib").Path("/nonexistent")))
    names = [s.name for s in evaluation_specs(cfg.evaluation)]
    assert names == ["linear-balanced", "knn-k5", "finetune-own"]
    assert all(kind_of(s) for s in cfg.evaluation.kinds())


def test_an_evaluation_in_one_new_file_validates_plans_and_tabulates(plugin, tmp_path):
    raw = tiny_study(tmp_path, methods=[{"name": "supervised"}])
    raw["pretrain"]["epochs"] = 1
    raw["evaluation"] = {
        "linear": {"train_on": ["balanced"], "l2_grid": [1e-3]},
        "knn": {"enabled": False},
        "finetune": {"enabled": False},
        "centroid": {"enabled": True, "shrink": 0.5},
    }
    raw["report"] = {"tsne": False}
    cfg = validate_config(raw)
    assert type(cfg.evaluation.centroid) is plugin.CentroidConfig
    with pytest.raises(UserError, match="evaluation.centroid.shrinks: unknown key"):
        validate_config({**raw, "evaluation": {"centroid": {"shrinks": 0.1}}})
    with pytest.raises(UserError, match="evaluation.centroid.shrink"):
        validate_config({**raw, "evaluation": {"centroid": {"shrink": 2}}})

    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    specs = evaluation_specs(cfg.evaluation)
    assert [s.name for s in specs] == ["linear-balanced", "centroid"]
    jobs = evaluation_jobs(specs, data, 0, "balanced")
    assert jobs[1].comparison == "pretraining" and len(jobs[1].indices) == len(data.probe_balanced)
    # it trains nothing: the plan's work is pretraining only
    size = len(data.draw(0).subsets["balanced"])
    rows = {r.representation: r for r in plan_rows(cfg, data)}
    assert rows["supervised_balanced_s0"].image_passes == size
    assert rows["supervised_balanced_s0"].evaluations == 2

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    plan = CliRunner().invoke(cli, ["run", str(path), "--plan"])
    assert plan.exit_code == 0, plan.output
    assert "evaluations of every representation: linear-balanced, centroid" in plan.output

    result = run_study(cfg, log=lambda *_: None)
    assert not result.failures
    rows = result.tables.results
    centroid = rows[rows["evaluation"] == "centroid"]
    assert len(centroid) == len(rows[rows["evaluation"] == "linear-balanced"]) > 0
    # the tables hold its numbers as written: nearest class mean on the cached features
    rep = next(s for s in expand_representations(cfg, data) if s.name == "supervised_balanced_s0")
    feats = rep.layout(cfg.layout).features
    probe = np.load(feats / "probe-balanced.npy")
    test = np.load(feats / "test.npy")
    y = data.labels[data.probe_balanced]
    means = np.stack([probe[y == c].mean(0) for c in range(data.num_classes)])
    means = 0.5 * means + 0.5 * means.mean(0)
    pred = (-((test[:, None, :] - means[None]) ** 2).sum(-1)).argmax(1)
    expected = (pred == data.labels[data.indices("test")]).mean()
    row = centroid[(centroid["method"] == "supervised") & (centroid["subset"] == "balanced")]
    assert row["top1"].iloc[0] == pytest.approx(expected)


def test_a_kind_name_is_registered_once_and_cannot_hide_a_shared_key():
    from typing import ClassVar

    from ssl_robustness.config import EvaluationSettings, KNNConfig

    class Variant(KNNConfig):  # keeps its parent's kind: not a new kind
        pass

    assert evaluation_kind_types()["knn"] is KNNConfig
    with pytest.raises(TypeError, match="'knn' is taken"):

        class Impostor(EvaluationSettings):
            kind: ClassVar[str] = "knn"

    with pytest.raises(TypeError, match="would hide the key evaluation.probe_set"):

        class Shadow(EvaluationSettings):
            kind: ClassVar[str] = "probe_set"

    assert evaluation_kind_types()["knn"] is KNNConfig


def test_kinds_run_in_their_order_and_names_are_unique(plugin):
    """Rows appear as before kinds were registered (the SGD probe last), a config made before a
    kind registered reads its defaults, and a kind reusing another's row name is refused."""
    from pathlib import Path

    raw = tiny_study(Path("/nonexistent"))
    raw["evaluation"]["linear_sgd"] = {"enabled": True}
    names = [s.name for s in evaluation_specs(validate_config(raw).evaluation)]
    assert names == ["linear-balanced", "knn-k5", "finetune-own", "linear-sgd"]

    from ssl_robustness.config import EvaluationConfig

    early = EvaluationConfig.model_construct()  # as if built before the plugin registered
    early.__dict__.pop("centroid", None)
    assert [type(s).__name__ for s in early.kinds()][-1] == "CentroidConfig"

    class Clash(plugin.Centroid):
        def specs(self, s, study):
            return [plugin.EvaluationSpec("linear-balanced", "balanced", s, {})]

    from ssl_robustness.evaluation.registry import register_evaluation

    register_evaluation(plugin.CentroidConfig)(Clash)
    cfg = validate_config({**raw, "evaluation": {"centroid": {"enabled": True}}})
    with pytest.raises(UserError, match="'linear-balanced' has the name of one of"):
        evaluation_specs(cfg.evaluation)

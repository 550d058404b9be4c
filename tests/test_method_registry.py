"""A method is one file: its settings, views, kind and code, registered by its settings class.
A method defined in one new file shows up in config validation, the plan and the report; and
the representation keys stay those of earlier runs."""

import importlib.util
import sys
import textwrap

import pytest
import yaml
from click.testing import CliRunner

from conftest import tiny_study
from ssl_robustness.cli import cli
from ssl_robustness.config import (
    SupervisedConfig,
    method_config_types,
    unregister_method_config,
    validate_config,
)
from ssl_robustness.data.prepare import prepare_data
from ssl_robustness.errors import UserError
from ssl_robustness.methods import is_self_supervised, registered_methods, views_per_step
from ssl_robustness.methods.registry import unregister_method
from ssl_robustness.plan import plan_rows
from ssl_robustness.representations import expand_representations
from ssl_robustness.study import run_study

# the whole new method, as one file: settings, views, kind and code
PLUGIN = textwrap.dedent(
    '''
    """SimCLR with a narrower projector: a method in one file."""

    from typing import Literal

    from pydantic import Field

    from ssl_robustness.config import MethodBase
    from ssl_robustness.methods.registry import register_method
    from ssl_robustness.methods.simclr import SIMCLR_VIEW, SimCLR


    class NarrowCLRConfig(MethodBase):
        name: Literal["narrowclr"] = "narrowclr"
        proj_dim: int = Field(16, ge=2)
        hidden_dim: int | None = None
        temperature: float = Field(0.5, gt=0)


    @register_method(NarrowCLRConfig, views=(SIMCLR_VIEW, SIMCLR_VIEW), self_supervised=True)
    class NarrowCLR(SimCLR):
        name = "narrowclr"
    '''
)


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "narrowclr.py"
    path.write_text(PLUGIN)
    spec = importlib.util.spec_from_file_location("narrowclr_plugin", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["narrowclr_plugin"] = module
    spec.loader.exec_module(module)
    yield module
    unregister_method(module.NarrowCLRConfig)
    unregister_method_config("narrowclr")
    del sys.modules["narrowclr_plugin"]


def test_builtin_methods_are_registered_with_their_kind():
    names = list(method_config_types())
    assert names[:5] == ["supervised", "mocov2", "simsiam", "simclr", "byol"]
    entries = {e.settings.model_fields["name"].default: e for e in registered_methods()}
    assert {n for n, e in entries.items() if e.self_supervised} == {
        "mocov2",
        "simsiam",
        "simclr",
        "byol",
        "sdclr",
        "bcl",
    }
    assert entries["supervised"].views_per_step == 1
    two = ("mocov2", "simsiam", "simclr", "byol", "sdclr", "bcl")
    assert all(entries[n].views_per_step == 2 for n in two)
    assert not is_self_supervised(SupervisedConfig())


def test_a_method_in_one_new_file_validates_plans_and_reports(plugin, tmp_path):
    raw = tiny_study(tmp_path, methods=[{"name": "supervised"}, {"name": "narrowclr"}])
    raw["random_init"] = False
    raw["pretrain"]["epochs"] = 1
    raw["evaluation"] = {
        "linear": {"train_on": ["balanced"], "l2_grid": [1e-3]},
        "knn": {"enabled": False},
        "finetune": {"enabled": False},
    }
    raw["report"] = {"tsne": False}
    cfg = validate_config(raw)
    assert type(cfg.methods[1]) is plugin.NarrowCLRConfig
    assert cfg.model_dump(mode="json")["methods"][1]["proj_dim"] == 16
    with pytest.raises(UserError, match="methods.0.proj_dims: unknown key"):
        validate_config({**raw, "methods": [{"name": "narrowclr", "proj_dims": 3}]})

    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    specs = expand_representations(cfg, data)
    assert {s.scenario for s in specs if s.method == "narrowclr"} == {"SSL-in-domain"}
    rows = {r.representation: r for r in plan_rows(cfg, data)}
    size = len(data.draw(0).subsets["balanced"])
    assert views_per_step(cfg.methods[1]) == 2
    assert rows["narrowclr_balanced_s0"].image_passes == 2 * 1 * size
    assert rows["supervised_balanced_s0"].image_passes == 1 * 1 * size

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    # the CLI runs in this process, where the plugin's file has been imported
    plan = CliRunner().invoke(cli, ["run", str(path), "--plan"])
    assert plan.exit_code == 0, plan.output
    assert "narrowclr_balanced_s0" in plan.output and "SSL-in-domain" in plan.output

    result = run_study(cfg, log=lambda *_: None)
    assert not result.failures
    assert set(result.tables.results["method"]) == {"supervised", "narrowclr"}
    page = result.report.read_text()
    assert "narrowclr (SSL-in-domain)" in page


def test_a_method_name_is_registered_once():
    from typing import Literal

    from ssl_robustness.config import MethodBase

    class Variant(SupervisedConfig):  # keeps its parent's name: not a new method
        pass

    assert method_config_types()["supervised"] is SupervisedConfig
    with pytest.raises(TypeError, match="'supervised' is taken"):

        class Impostor(MethodBase):
            name: Literal["supervised"] = "supervised"

    assert method_config_types()["supervised"] is SupervisedConfig


def test_an_unregistered_method_name_is_refused_naming_the_known_ones():
    with pytest.raises(UserError, match="'supervised', 'mocov2', 'simsiam', 'simclr', 'byol'"):
        validate_config({"methods": [{"name": "narrowclr"}]})


# Representation keys of the tiny study (seeds 0 and 1, three methods). They changed once on
# purpose: `class_order: auto` entered the imbalance settings (every key) and trained runs are
# keyed by their batch order ("drawn", not sorted by item index, which followed the labels).
# Then the trained ones again: with n fixed and the rare classes drawn per seed, the disjoint
# probe set keeps room for the head's count in every class (any class is the head in some
# seed), so it is smaller, the pretraining pool larger, and every subset draws anew.
# Otherwise the directories of earlier runs must stay theirs.
KEYS = {
    "supervised-cb_balanced_s0": "b6eefe028f",
    "supervised-cb_exp-r0.2_s0": "de4b72d503",
    "simclr_balanced_s0": "cddcd816f1",
    "simclr_exp-r0.2_s0": "a424cebbcc",
    "byol_balanced_s0": "3b0b16abfb",
    "byol_exp-r0.2_s0": "6f50de47f9",
    "random-init_none_s0": "5f7bfcc604",
    "supervised-cb_balanced_s1": "7ee02d78cd",
    "supervised-cb_exp-r0.2_s1": "1002bb71b5",
    "simclr_balanced_s1": "344b333caf",
    "simclr_exp-r0.2_s1": "49822351ad",
    "byol_balanced_s1": "26cc22ec5d",
    "byol_exp-r0.2_s1": "ef31cef00e",
    "random-init_none_s1": "66611ade8a",
}


def test_representation_keys_are_those_of_earlier_runs(tmp_path):
    methods = [
        {"name": "supervised", "loss": "cb"},
        {"name": "simclr"},
        {"name": "byol", "epochs": 1},
    ]
    cfg = validate_config(tiny_study(tmp_path, methods=methods, seeds=[0, 1]))
    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    specs = expand_representations(cfg, data)
    assert {s.name: s.key for s in specs} == KEYS
    trained = next(s for s in specs if s.method == "byol")
    assert trained.train.epochs == 1 and trained.method_config is cfg.methods[2]
    assert trained.layout(cfg.layout).path == cfg.out / "representations" / trained.dirname


def test_imported_specs_keep_their_settings(tmp_path):
    ckpt = tmp_path / "in1k.pth"
    ckpt.write_bytes(b"x")
    raw = tiny_study(tmp_path, imported=[{"name": "in1k", "path": str(ckpt), "image_size": 32}])
    cfg = validate_config(raw)
    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    spec = next(s for s in expand_representations(cfg, data) if s.scenario == "SSL-ImageNet")
    st = ckpt.stat()
    assert spec.input_size == 32
    assert spec.settings == {
        "data": spec.settings["data"],
        "split": cfg.data.split.model_dump(mode="json"),
        "imbalance": cfg.data.imbalance.model_dump(mode="json"),
        "image_size": cfg.data.image_size,
        "input_size": 32,
        "imported": cfg.imported[0].model_dump(mode="json"),
        "size": st.st_size,
        "mtime": st.st_mtime,
    }

from pathlib import Path

import pytest

from ssl_robustness.config import (
    apply_override,
    builtin_config_text,
    load_config,
    validate_config,
)
from ssl_robustness.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_builtin_quickstart_is_the_shipped_config_file():
    assert builtin_config_text() == (REPO / "configs" / "quickstart.yaml").read_text()
    cfg = load_config(None)
    assert cfg.data.source == "digits" and len(cfg.seeds) == 2
    assert {m.name for m in cfg.methods} >= {"supervised", "mocov2", "simsiam"}


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")))
def test_every_shipped_config_parses(path, tmp_path, monkeypatch):
    # paths inside may not exist here: only the schema is checked, so give them a root
    import yaml

    raw = yaml.safe_load(path.read_text())
    if raw.get("data", {}).get("root"):
        raw["data"]["root"] = str(tmp_path)
    if raw.get("data", {}).get("list"):
        raw["data"]["list"] = {"train": str(tmp_path / "x.txt")}
    raw.pop("imported", None)
    validate_config(raw, str(path))


def test_out_of_range_ratio_names_key_and_reason():
    with pytest.raises(
        UserError, match=r"data\.imbalance\.ratio: must be in \(0, 1\] \(got 2\.0\)"
    ):
        validate_config({"data": {"imbalance": {"ratio": 2.0}}})


def test_unknown_key_is_reported_with_its_path():
    with pytest.raises(UserError, match=r"data\.imbalanse: unknown key"):
        validate_config({"data": {"imbalanse": {}}})


def test_wrong_type_and_unknown_method_option():
    with pytest.raises(UserError, match=r"pretrain\.epochs: .*integer"):
        validate_config({"pretrain": {"epochs": "many"}})
    with pytest.raises(UserError, match=r"methods\.0\.queue: unknown key"):
        validate_config({"methods": [{"name": "simsiam", "queue": 3}]})


def test_missing_root_path_fails_at_validation(tmp_path):
    with pytest.raises(UserError, match=r"data: .*root: path does not exist: .*nowhere"):
        validate_config({"data": {"source": "folder", "root": str(tmp_path / "nowhere")}})
    with pytest.raises(UserError, match=r"root: required for source 'folder'"):
        validate_config({"data": {"source": "folder"}})


def test_overrides_parse_yaml_values_and_reach_list_items():
    raw = {"methods": [{"name": "mocov2"}]}
    apply_override(raw, "data.image_size=32")
    apply_override(raw, "methods.0.temperature=0.1")
    apply_override(raw, "seeds=[1, 2]")
    cfg = validate_config(raw)
    assert cfg.data.image_size == 32 and cfg.methods[0].temperature == 0.1 and cfg.seeds == [1, 2]
    with pytest.raises(UserError, match="KEY=VALUE"):
        apply_override(raw, "data.image_size")
    with pytest.raises(UserError, match="no list item methods.5"):
        apply_override(raw, "methods.5.lr=1")


def test_yaml_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndata:\n  source: [digits\n")
    with pytest.raises(UserError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_config(bad)
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "none.yaml")


def test_duplicate_method_labels_and_seeds_are_refused():
    with pytest.raises(UserError, match="share the label"):
        validate_config({"methods": [{"name": "mocov2"}, {"name": "mocov2"}]})
    with pytest.raises(UserError, match="seeds must be distinct"):
        validate_config({"seeds": [0, 0]})

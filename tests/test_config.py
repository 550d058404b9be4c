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


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"data": {"imbalance": {"seed": -1}}}, r"data\.imbalance\.seed: a seed must be >= 0"),
        ({"data": {"split": {"seed": -2}}}, r"data\.split\.seed: a seed must be >= 0"),
        ({"seeds": [0, -1]}, r"seeds: every seed must be >= 0 \(got \[0, -1\]\)"),
        ({"evaluation": {"knn": {"k": [20, 0]}}}, r"evaluation\.knn\.k: every k must be >= 1"),
        ({"evaluation": {"knn": {"k": [5, 5]}}}, r"evaluation\.knn\.k: k values must be distinct"),
        ({"backbone": {"layers": [0, 0, 0, 0]}}, r"backbone\.layers: needs 4 block counts"),
        ({"backbone": {"layers": [1, 1, 1, 1, 1]}}, r"backbone\.layers: needs 4 block counts"),
        ({"backbone": {"name": "timm:"}}, r"backbone\.name: timm: needs a model name"),
    ],
)
def test_values_that_used_to_pass_silently_are_refused(raw, message):
    with pytest.raises(UserError, match=message):
        validate_config(raw)


def test_imported_arch_must_be_known(tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x")
    entry = {"name": "in1k", "path": str(weights)}
    with pytest.raises(UserError, match=r"imported\.0\.arch: must be one of resnet18, resnet50"):
        validate_config({"imported": [{**entry, "arch": "bogus"}]})
    for arch in ("resnet50", "timm:vit_small_patch16_224", None):
        assert validate_config({"imported": [{**entry, "arch": arch}]}).imported[0].arch == arch


def test_duplicate_yaml_keys_name_the_key_and_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("name: a\ndata:\n  image_size: 8\n  source: digits\n  image_size: 16\n")
    with pytest.raises(UserError, match=r"dup\.yaml:5: .*duplicate key 'image_size' \(first set"):
        load_config(path)
    path.write_text("seeds: [0]\nreport: {tsne: true, tsne: false}\n")
    with pytest.raises(UserError, match=r"dup\.yaml:2: .*duplicate key 'tsne'"):
        load_config(path)
    path.write_text("base: &b {epochs: 2}\npretrain:\n  <<: *b\n  batch_size: 8\n")
    with pytest.raises(UserError, match=r"base: unknown key"):  # merge keys still work
        load_config(path)


def test_config_that_is_not_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: x\ndata:\n  root: /caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin\.yaml:3: not UTF-8 text \(byte 0xe9"):
        load_config(path)
    with pytest.raises(UserError, match="is a folder, not a config file"):
        load_config(tmp_path)


def test_override_below_a_value_or_with_an_empty_part_is_refused():
    raw = {"name": "x", "seeds": [0]}
    with pytest.raises(UserError, match=r"--set name\.x\.y: name is a value \('x'\), not a"):
        apply_override(raw, "name.x.y=1")
    with pytest.raises(UserError, match=r"--set name\.x: name is a value"):
        apply_override(raw, "name.x=1")
    with pytest.raises(UserError, match=r"--set seeds\.0\.x: seeds\.0 is a value \(0\)"):
        apply_override(raw, "seeds.0.x=1")
    with pytest.raises(UserError, match="empty key part"):
        apply_override(raw, "data..seed=1")
    assert raw == {"name": "x", "seeds": [0]}


def test_config_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, ssl_robustness.config, ssl_robustness.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_subclass_adds_to_its_parents_keys_left_out_when_none():
    """Naming its own keys must not put a parent's back into the dump (and the cache keys)."""
    from typing import ClassVar

    from ssl_robustness.config.base import OmitsUnset

    class Parent(OmitsUnset):
        a: int | None = None
        omit_when_none: ClassVar[tuple[str, ...]] = ("a",)

    class Child(Parent):
        b: int | None = None
        c: int | None = None
        omit_when_none: ClassVar[tuple[str, ...]] = ("b",)

    assert Child.omit_when_none == ("a", "b")
    assert Child().model_dump() == {"c": None}
    assert Child(a=1, b=2).model_dump() == {"a": 1, "b": 2, "c": None}


def test_the_tiers_old_key_still_works_with_a_note(capsys):
    """head/medium/tail were `data.groups` until "group" came to mean data.group_by's images
    that belong together: a user's config with the old key is read as data.tiers and told so
    (stderr); a saved run's config is read without a word."""
    cfg = validate_config({"data": {"groups": {"rule": "thirds", "many_above": 50}}}, "s.yaml")
    assert (cfg.data.tiers.rule, cfg.data.tiers.many_above) == ("thirds", 50)
    assert "groups" not in cfg.data.model_dump()
    assert capsys.readouterr().err == (
        "note: s.yaml: data.groups is now data.tiers; the old key still works\n"
    )
    from ssl_robustness.config import StudyConfig

    StudyConfig.model_validate({"data": {"groups": {"rule": "oltr"}}})
    assert capsys.readouterr().err == ""

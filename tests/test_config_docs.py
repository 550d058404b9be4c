"""Every config key is documented, and the generated reference is current."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ssl_robustness.cli import cli
from ssl_robustness.config import MethodBase, StudyConfig, method_config_types
from ssl_robustness.config_docs import config_markdown, config_yaml, sections

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_every_field_of_every_config_model_has_a_description() -> None:
    models = {model for _, model in sections()} | set(method_config_types().values())
    assert StudyConfig in models and len(method_config_types()) >= 5
    assert all(issubclass(m, MethodBase) for m in method_config_types().values())
    missing = [
        f"{model.__name__}.{name}"
        for model in models
        for name, field in model.model_fields.items()
        if not (field.description or "").strip()
    ]
    assert missing == []


def test_every_method_kind_and_nested_section_is_listed() -> None:
    paths = [path for path, _ in sections()]
    for kind in method_config_types():
        assert f"methods[{kind}]" in paths
    for path in ("", "data", "data.imbalance", "data.split", "pretrain.optimizer", "imported[]"):
        assert path in paths


def test_docs_config_md_is_the_generated_reference() -> None:
    """Regenerate with: ssl-robustness config --markdown > docs/config.md"""
    stale = DOC.read_text(encoding="utf-8") != config_markdown()
    assert not stale, "docs/config.md is stale: ssl-robustness config --markdown > docs/config.md"


def test_config_yaml_is_the_defaults_with_comments() -> None:
    text = config_yaml()
    defaults = StudyConfig().model_dump(mode="json") | {"output_dir": None}  # runs/<name>
    shown = yaml.safe_load(text)
    # a key added after runs were keyed is left out of the dump while unset (OmitsUnset) but
    # shown, null, in the annotated template
    assert shown["data"]["split"].pop("max_per_group") is None
    assert shown == defaults
    lines = text.splitlines()
    key = lines.index("    many_above: 100")  # data.tiers.many_above
    assert lines[key - 1] == (
        "    # oltr: a class with more training images than this is head (many-shot)."
    )
    assert "# kind 'mocov2':" in lines
    assert "#   queue_size: 4096" in lines


def test_config_command_prints_one_section() -> None:
    result = CliRunner().invoke(cli, ["config", "--section", "data.tiers"])
    assert result.exit_code == 0
    assert yaml.safe_load(result.output) == {
        "tiers": {"rule": "auto", "many_above": 100, "few_below": 20}
    }
    assert result.output.startswith("# The frequency tiers (head/medium/tail) of the classes")
    assert "  # How classes are sorted into the tiers head/medium/tail" in result.output


@pytest.mark.parametrize("section", ["data.nope", "seeds.x"])
def test_config_command_refuses_an_unknown_section(section: str) -> None:
    result = CliRunner().invoke(cli, ["config", "--section", section])
    assert result.exit_code == 2
    assert f"--section {section}" in result.output


def test_config_markdown_command_writes_the_reference() -> None:
    result = CliRunner().invoke(cli, ["config", "--markdown"])
    assert result.exit_code == 0
    assert result.output == config_markdown()
    assert "| `many_above` | int | `100` | oltr: a class with more training images" in result.output

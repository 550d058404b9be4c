"""The config reference, generated from the schema: `ssl-robustness config` prints the annotated
defaults as YAML, `--markdown` writes docs/config.md. The docstring under each field is its
documentation, so the reference cannot drift from the code (tests/test_config_docs.py)."""

from __future__ import annotations

import textwrap
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .config import ImportedConfig, StudyConfig, method_config_types
from .errors import UserError

WIDTH = 100
REQUIRED = "<required>"

# list sections whose items are config models: how the reference lists their item kinds
LIST_SECTIONS = ("methods", "imported")


def describe(field: FieldInfo) -> str:
    """The field's docstring on one line (pydantic keeps the source's line breaks)."""
    return " ".join((field.description or "").split())


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The config model of a field that is a section (`X` or `X | None`), else None."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 and len(args) == 2 and type(None) in args else None
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def list_item_kinds(name: str) -> dict[str, type[BaseModel]]:
    """The item models of a list section: every registered method kind, or the imported one."""
    if name == "methods":
        return dict(method_config_types())
    return {"": ImportedConfig}


def default_value(field: FieldInfo) -> Any:
    """The field's default (a factory called), or REQUIRED."""
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    if field.default is PydanticUndefined:
        return REQUIRED
    return field.default


def _yaml_scalar(value: Any) -> str:
    """A default as one line of YAML (flow style)."""
    if value == REQUIRED:
        return REQUIRED
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Path):
        value = str(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def type_name(annotation: Any) -> str:
    """A short human name of a field's type: `int`, `exp | step`, `list of float`, ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map {type_name(args[0])} to {type_name(args[1])}"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if typing.get_origin(annotation) is typing.Annotated:
        return type_name(args[0])
    return getattr(annotation, "__name__", str(annotation))


# ----------------------------------------------------------------------------- YAML
def _comment(text: str, indent: int) -> list[str]:
    pad = " " * indent
    return [f"{pad}# {line}" for line in textwrap.wrap(text, WIDTH - indent - 2)] if text else []


def model_yaml(model: type[BaseModel], indent: int = 0) -> list[str]:
    """The model's keys with their defaults, each under its docstring as a comment."""
    lines: list[str] = []
    for name, field in model.model_fields.items():
        if indent == 0 and lines and _section_model(field.annotation) is not None:
            lines.append("")  # a blank line before each top-level section
        lines += field_yaml(name, field, indent)
    return lines


def field_yaml(name: str, field: FieldInfo, indent: int) -> list[str]:
    """One key: its comment, then `key: default`, a nested section, or a list's item kinds."""
    pad = " " * indent
    lines = _comment(describe(field), indent)
    sub = _section_model(field.annotation)
    default = default_value(field)
    if sub is not None and default is None:  # an optional section: its keys, commented out
        lines.append(f"{pad}{name}: null")
        lines.append(f"{pad}# {name}:")
        lines += [_comment_out(line, indent) for line in model_yaml(sub, indent + 2)]
    elif sub is not None:
        lines.append(f"{pad}{name}:")
        lines += model_yaml(sub, indent + 2)
    elif name in LIST_SECTIONS and not default:
        lines.append(f"{pad}{name}: []")
        for kind, item in list_item_kinds(name).items():
            title = f"kind '{kind}'" if kind else "an item"
            lines.append(f"{pad}# {title}:")
            lines += [_comment_out(line, indent) for line in list_item_yaml(item, indent)]
    else:
        lines.append(f"{pad}{name}: {_yaml_scalar(default)}")
    return lines


def list_item_yaml(model: type[BaseModel], indent: int) -> list[str]:
    """One list item: the model's keys, the first one behind `- `."""
    body = [line for name, f in _ordered(model) for line in field_yaml(name, f, indent + 2)]
    first = next(i for i, line in enumerate(body) if not line.lstrip().startswith("#"))
    pad = " " * indent
    body[first] = f"{pad}- {body[first][indent + 2 :]}"
    return body


def _comment_out(line: str, indent: int) -> str:
    """A line of a section that is not set by default, commented out at the section's indent."""
    return f"{' ' * indent}# {line[indent:]}"


def config_yaml(section: str | None = None) -> str:
    """`ssl-robustness config [--section S]`: the annotated defaults of the study or a section."""
    if section is None:
        lines = [
            "# ssl-robustness study config: every key with its default and what it means.",
            "# A config file sets only what differs; --set a.b=c overrides any key.",
            *model_yaml(StudyConfig),
        ]
        return "\n".join(lines) + "\n"
    model, name, field = _find_section(section)
    return "\n".join(field_yaml(name, field, 0)) + "\n"


def _find_section(section: str) -> tuple[type[BaseModel], str, FieldInfo]:
    """The model holding a dotted section and its field; a UserError naming the known ones."""
    model: type[BaseModel] = StudyConfig
    parts = section.split(".")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            where = ".".join(parts[:i]) or "the config"
            known = ", ".join(model.model_fields)
            raise UserError(f"--section {section}: {where} has no key {part!r}; known: {known}")
        if i == len(parts) - 1:
            return model, part, field
        sub = _section_model(field.annotation)
        if sub is None:
            raise UserError(f"--section {section}: {'.'.join(parts[: i + 1])} is not a section")
        model = sub
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------- Markdown
def sections() -> Iterator[tuple[str, type[BaseModel]]]:
    """Every config model with its dotted key path, parents first (list items as `key[kind]`)."""
    yield from _sections("", StudyConfig)


def _sections(
    path: str, model: type[BaseModel], seen: set[type[BaseModel]] | None = None
) -> Iterator[tuple[str, type[BaseModel]]]:
    """A section used at several paths (every method's `sam`) is listed at its first one."""
    seen = set() if seen is None else seen
    seen.add(model)
    yield path, model
    for name, field in _ordered(model):
        key = f"{path}.{name}" if path else name
        sub = _section_model(field.annotation)
        if sub is not None and sub not in seen:
            yield from _sections(key, sub, seen)
        elif name in LIST_SECTIONS and model is StudyConfig:
            for kind, item in list_item_kinds(name).items():
                yield from _sections(f"{key}[{kind}]", item, seen)


def _ordered(model: type[BaseModel]) -> list[tuple[str, FieldInfo]]:
    """The model's fields, `name` first (a list item is told apart by it)."""
    return sorted(model.model_fields.items(), key=lambda kv: kv[0] != "name")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_markdown() -> str:
    """docs/config.md: one table per section (key, type, default, meaning)."""
    out = [
        "# Config reference",
        "",
        "Generated from the schema by `ssl-robustness config --markdown` (do not edit by hand;",
        "a test checks it is current). `ssl-robustness config` prints the same as annotated YAML.",
        "A study config sets only what differs from these defaults; `--set a.b=c` overrides",
        "any key (`--set methods.0.lr=0.1`). Unknown keys are errors.",
    ]
    first = {model: path for path, model in sections()}  # each model once (see _sections)
    for model, path in first.items():
        out += ["", f"## {f'`{path}`' if path else 'Top level'}", ""]
        doc = " ".join((model.__doc__ or "").split()) if path else ""
        if doc and model.__doc__ != BaseModel.__doc__:
            out += [doc, ""]
        out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for name, field in _ordered(model):
            sub = _section_model(field.annotation)
            default = default_value(field)
            listed = name in LIST_SECTIONS and model is StudyConfig
            if sub is not None:
                kind = f"section (`{first[sub]}`)"
                shown = "`null`" if default is None else "see the section"
            elif listed:
                kind, shown = f"list of items (`{name}[...]` below)", "`[]`"
            else:
                kind, shown = _cell(type_name(field.annotation)), f"`{_yaml_scalar(default)}`"
            out.append(f"| `{name}` | {kind} | {_cell(shown)} | {_cell(describe(field))} |")
    return "\n".join(out) + "\n"

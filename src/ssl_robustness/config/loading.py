"""Reading a study config: YAML (duplicate keys and alias bombs refused), `--set` overrides,
and validation errors that name the key at fault."""

from __future__ import annotations

import difflib
import sys
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from ..errors import UserError, utf8_text
from .base import BOOL_ERROR
from .methods import method_config_types
from .study import StudyConfig


def builtin_config_text(name: str = "quickstart") -> str:
    return resources.files("ssl_robustness").joinpath(f"configs/{name}.yaml").read_text()


def load_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> StudyConfig:
    """Read a YAML study config (None: the built-in quick start), apply overrides, validate."""
    if path is None:
        source, text = "<built-in quickstart>", builtin_config_text()
    else:
        source, text = str(path), _read_config_text(Path(path))
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except _TooLarge as exc:
        raise UserError(f"{source}:{exc.problem_mark.line + 1}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(
            f"{source}{where}: not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if raw is None:  # an empty or comment-only file: never the quick start's defaults unasked
        raise UserError(
            f"{source}: the config file is empty (or only comments); give the study's settings, "
            "or leave out the file to run the built-in quick start"
        )
    if not isinstance(raw, dict):
        raise UserError(
            f"{source}: a study config must be a mapping of keys, got {type(raw).__name__}"
        )
    for item in overrides:
        apply_override(raw, item)
    return validate_config(raw, source)


def _read_config_text(p: Path) -> str:
    """The file's text, or a UserError saying why it cannot be read (missing, folder, encoding)."""
    if p.is_dir():
        raise UserError(f"{p}: is a folder, not a config file")
    if not p.is_file():
        raise UserError(f"{p}: config file not found")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise UserError(f"{p}: cannot read config file: {exc.strerror}") from None
    return utf8_text(data, p, "the config")


MAX_YAML_NODES = 100_000  # a study config has hundreds; aliases may not expand beyond this


class _TooLarge(yaml.MarkedYAMLError):
    """An alias expands the document past MAX_YAML_NODES (a "billion laughs" bomb)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key set twice in one mapping (plain YAML keeps the last one)
    and a document whose aliases expand it past MAX_YAML_NODES nodes: nine aliases of nine
    aliases ... are a 1 kB file that validation would walk for hours."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._expanded = 0
        self._sizes: dict[int, int] = {}
        self._path: list[str] = []  # the key path of the node being composed: seeds.3

    def compose_node(self, parent: Any, index: Any) -> Any:
        alias = self.check_event(yaml.AliasEvent)
        event = self.peek_event()
        # a mapping's value is composed with its key node as `index`, a list item with its
        # position; a key itself (index None) adds nothing to the path
        part = None
        if isinstance(parent, yaml.SequenceNode):
            part = str(index)
        elif isinstance(parent, yaml.MappingNode) and isinstance(index, yaml.ScalarNode):
            part = str(index.value)
        if part is not None:
            self._path.append(part)
        try:
            node = super().compose_node(parent, index)
            self._expanded += self._size(node) if alias else 1
            if self._expanded > MAX_YAML_NODES:
                key = ".".join(self._path) or "the top level"
                what = f"the alias *{event.anchor}" if alias else "this value"
                raise _TooLarge(
                    None,
                    None,
                    f"{key}: {what} expands the config past {MAX_YAML_NODES} values (an "
                    "alias bomb?); refused",
                    event.start_mark,
                )
        finally:
            if part is not None:
                self._path.pop()
        return node

    def _size(self, node: yaml.Node) -> int:
        """Values in `node` with every alias expanded (memoised: aliases share nodes)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._size(n) for n in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._size(k) + self._size(v) for k, v in node.value)
        self._sizes[id(node)] = size = min(size, MAX_YAML_NODES + 1)
        return size

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first set on line {first[key]})",
                        key_node.start_mark,
                    )
                first[key] = key_node.start_mark.line + 1
            except TypeError:  # unhashable key: the base class reports it
                continue
        return super().construct_mapping(node, deep=deep)


# keys renamed after configs were in use: old path -> new path (the schema still reads them)
RENAMED_KEYS = {("data", "groups"): "data.tiers"}


def old_key_notes(raw: Any, source: str) -> list[str]:
    """One note per renamed key a config still uses, naming the file and the new key."""
    notes = []
    for path, new in RENAMED_KEYS.items():
        node = raw
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            old = ".".join(path)
            notes.append(f"note: {source}: {old} is now {new}; the old key still works")
    return notes


def validate_config(raw: dict[str, Any], source: str = "<config>") -> StudyConfig:
    """The study config of a user's `raw` dict (a UserError naming every fault); renamed keys
    are said on stderr."""
    for note in old_key_notes(raw, source):
        print(note, file=sys.stderr)
    try:
        return StudyConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{source}: invalid config\n" + format_validation_error(exc)) from None


def format_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"] if not _is_union_tag(x)]
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key" + _did_you_mean(err["loc"])
        if err["type"] == "list_type" and "," in str(err.get("input")):
            msg += f"; a list is written in brackets: [{err['input']}]"
        got = (
            ""
            if err["type"] in ("extra_forbidden", "missing", BOOL_ERROR)
            else f" (got {err.get('input')!r})"
        )
        if err["type"] == BOOL_ERROR:  # raised by the section: the key is in its context
            loc.append(str(err.get("ctx", {}).get("key", "")))
        if len(got) > 80:
            got = ""
        lines.append(f"  {'.'.join(loc) or '<root>'}: {msg}{got}")
    return "\n".join(lines)


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """'; did you mean 'epochs'?' for an unknown key close to a key of its own section."""
    model: Any = StudyConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if part in method_config_types():  # the union's tag: this item's method settings
            model = method_config_types()[part]
            continue
        field = model.model_fields.get(part)
        model = _section_model(field.annotation) if field is not None else None
        if model is None:
            return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _section_model(annotation: Any) -> Any:
    """The config section class inside an annotation (X, X | None, list[X]), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_section_model, get_args(annotation))), None)


def _is_union_tag(x: Any) -> bool:
    return isinstance(x, str) and x in method_config_types()


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML) to the raw config dict; list items by index."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. data.image_size=32")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise UserError(f"--set {item!r}: empty key part in {key.strip()!r}")
    try:
        parsed = yaml.load(value, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        why = getattr(exc, "problem", None) if isinstance(exc, yaml.MarkedYAMLError) else None
        why = f" ({why})" if isinstance(why, str) and "duplicate key" in why else ""
        raise UserError(f"--set {item!r}: value is not valid YAML{why}") from None
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict | list):
            raise UserError(
                f"--set {key}: {'.'.join(parts[:i])} is a value ({node!r}), not a section"
            )
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(f"--set {key}: no list item {'.'.join(parts[: i + 1])}")
            node = node[int(part)]
        else:
            if node.get(part) is None:  # absent, or `key:` left empty in the YAML
                node[part] = {}
            node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise UserError(f"--set {key}: no list item {key}")
        node[int(last)] = parsed
    elif isinstance(node, dict):
        node[last] = parsed
    else:
        raise UserError(f"--set {key}: {'.'.join(parts[:-1])} is a value ({node!r}), not a section")

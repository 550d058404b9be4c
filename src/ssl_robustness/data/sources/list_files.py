"""Source `list`: split files of `relative/path label` lines (ImageNet-LT, Places-LT,
iNaturalist), CSV/TSV, or path-only lines labelled by their folder.

Errors name the file and line at fault: a label out of range, an unknown class, a duplicate
path."""

from __future__ import annotations

import csv
import glob
import io
from pathlib import Path

import numpy as np

from ...config import DataConfig, ListFilesConfig
from ...errors import UserError
from ..listing.labelled import LabelledSet
from .common import SPLIT_NAMES, read_utf8, relative_item, source_root
from .registry import register_source

Row = tuple[str, str, str, str]  # (item relative to data.root, label, split, "file:line")


def load_list(root: Path, cfg: ListFilesConfig) -> LabelledSet:
    """Split files: `relative/path label` lines (ImageNet-LT, Places-LT, iNaturalist), CSV/TSV,
    or path-only lines labelled by their folder; several files (or a glob) per split."""
    class_names: list[str] | None = None
    if cfg.classes is not None:
        if not cfg.classes.is_file():
            raise UserError(f"data.list.classes: file not found: {cfg.classes}")
        class_names = _class_names(cfg.classes)
    rows: list[Row] = []
    for split in SPLIT_NAMES:
        for path in list_files(cfg, split):
            base = base_folder(root, cfg, split, path)
            for p, lab, where in read_rows(path, cfg, "data.list.label_column"):
                rows.append((relative_item(root, base, p), lab, split, where))
    if not rows:
        raise UserError(f"data.list.train: no items listed in {list_files(cfg, 'train')}")
    seen: dict[str, str] = {}
    for p, _, _, where in rows:
        if p in seen:
            raise UserError(f"{where}: duplicate path {p!r} (first listed at {seen[p]})")
        seen[p] = where
    numeric = cfg.label_from == "column"  # folder names such as GTSRB's 00000 are names
    labels = _resolve_labels(rows, class_names, numeric)
    names = class_names or _default_names(rows, numeric)
    return LabelledSet(
        [r[0] for r in rows],
        labels,
        names,
        root=root,
        official_split=np.array([r[2] for r in rows], dtype=object),
    )


def list_files(cfg: ListFilesConfig, split: str) -> list[Path]:
    """The list files of a split: each entry a file or a glob (sorted matches)."""
    value = getattr(cfg, split)
    if value is None:
        return []
    out: list[Path] = []
    for entry in value if isinstance(value, list) else [value]:
        text = str(entry)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise UserError(f"data.list.{split}: no file matches {text!r}")
            out += files
        elif not entry.is_file():
            raise UserError(f"data.list.{split}: file not found: {entry}")
        else:
            out.append(entry)
    return out


def base_folder(root: Path, cfg: ListFilesConfig, split: str, list_file: Path) -> Path:
    """The folder a split's listed paths are relative to: its own root, the list file's
    folder, or data.root."""
    if split in cfg.roots:
        base = cfg.roots[split]  # type: ignore[index]
        if not base.is_dir():
            raise UserError(f"data.list.roots.{split}: not a folder: {base}")
        return base
    return list_file.parent if cfg.relative_to == "list" else root


def _class_names(path: Path) -> list[str]:
    """data.list.classes, one name a line in label order; a name listed twice would make two
    labels one class (the later index wins), so it is refused with both lines."""
    names: list[str] = []
    first: dict[str, int] = {}
    for lineno, line in enumerate(read_utf8(path).splitlines(), 1):
        name = line.strip()
        if not name:
            continue
        if name in first:
            raise UserError(
                f"{path}:{lineno}: class name {name!r} listed twice (first on line "
                f"{first[name]}); each line names one class, in label order"
            )
        first[name] = lineno
        names.append(name)
    return names


# how a whitespace-separated list line is split, said where a line does not fit it
WHITESPACE_RULE = (
    "a .txt list line is `path label`: the label is the last whitespace-separated field and "
    "the path is the rest (it may hold spaces); a line with tabs is split at its tabs; other "
    "columns (data.list.path_column/label_column) split at every space: use a .tsv or .csv "
    "for paths with spaces there"
)


def _whitespace_fields(line: str, two_columns: bool) -> list[str]:
    """The fields of a whitespace-separated list line (see WHITESPACE_RULE)."""
    text = line.strip()
    if "\t" in text:
        return [f.strip() for f in text.split("\t")]
    return text.rsplit(None, 1) if two_columns else text.split()


def read_rows(
    path: Path, cfg: ListFilesConfig, label_key: str | None = None
) -> list[tuple[str, str, str]]:
    """(path, label, "file:line") of each row; `label_key` names the label column's config
    key in errors (the group reader passes data.group_by.column)."""
    suffix = path.suffix.lower()
    delimiter = cfg.delimiter or {".csv": ",", ".tsv": "\t"}.get(suffix)
    by_folder = cfg.label_from == "folder"
    named = isinstance(cfg.path_column, str) or (
        not by_folder and isinstance(cfg.label_column, str)
    )
    columns = [cfg.path_column] if by_folder else [cfg.path_column, cfg.label_column]
    out = []
    with io.StringIO(read_utf8(path), newline="") as fh:
        if delimiter is None:
            # a path-only line is the whole line (file names may hold spaces)
            two = (cfg.path_column, cfg.label_column) == (0, 1)
            lines = (
                (i, [line.strip()] if by_folder else _whitespace_fields(line, two))
                for i, line in enumerate(fh, 1)
            )
        else:
            reader = csv.reader(fh, delimiter=delimiter)
            lines = ((reader.line_num, row) for row in reader)
        header: list[str] | None = None
        for lineno, fields in lines:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if named and header is None:
                header = fields
                for col in columns:
                    if isinstance(col, str) and col not in header:
                        raise UserError(f"{path}:{lineno}: no column {col!r} in header {header}")
                continue
            idx = [header.index(c) if isinstance(c, str) else c for c in columns]  # type: ignore[union-attr]
            if max(idx) >= len(fields):
                keys = ["data.list.path_column", label_key or "the label column"]
                past = [
                    f"{key} {col!r} (field {i + 1})"
                    for key, col, i in zip(keys, columns, idx, strict=False)
                    if i >= len(fields)
                ]
                rule = f"; {WHITESPACE_RULE}" if delimiter is None else ""
                raise UserError(
                    f"{path}:{lineno}: expected at least {max(idx) + 1} fields, got "
                    f"{len(fields)}: {fields!r} ({', '.join(past)} is past them){rule}"
                )
            item = fields[idx[0]].strip()
            label = _folder_label(item, f"{path}:{lineno}") if by_folder else fields[idx[1]].strip()
            out.append((item, label, f"{path}:{lineno}"))
    return out


def _folder_label(item: str, where: str) -> str:
    parent = Path(item).parent.name
    if not parent:
        raise UserError(
            f"{where}: {item!r} has no folder to take the label from "
            "(data.list.label_from: folder expects <class>/<image> paths)"
        )
    return parent


def _resolve_labels(
    rows: list[Row], names: list[str] | None, numeric_ok: bool = True
) -> np.ndarray:
    numeric = numeric_ok and all(_is_index(lab) for _, lab, _, _ in rows)
    if numeric_ok and not numeric and not (names and all(r[1] in names for r in rows)):
        _refuse_mixed_labels(rows)
    labels = []
    if numeric:
        limit = len(names) if names is not None else None
        for _, lab, _, where in rows:
            value = int(lab)
            if value < 0 or (limit is not None and value >= limit):
                bound = f"[0, {limit})" if limit is not None else ">= 0"
                raise UserError(f"{where}: label {value} out of range {bound}")
            labels.append(value)
        return np.array(labels)
    index = {n: i for i, n in enumerate(names or sorted({lab for _, lab, _, _ in rows}))}
    for _, lab, _, where in rows:
        if lab not in index:
            raise UserError(f"{where}: unknown class {lab!r} (not in data.list.classes)")
        labels.append(index[lab])
    return np.array(labels)


def _is_index(label: str) -> bool:
    return label.lstrip("-").isdigit()


def _refuse_mixed_labels(rows: list[Row]) -> None:
    """Labels that are class indexes on some lines and names on others were all read as names
    ('0', '1', 'cat': three classes, the indexes' meaning lost): refused, naming a line of
    each kind."""
    index = next((r for r in rows if _is_index(r[1])), None)
    name = next((r for r in rows if not _is_index(r[1])), None)
    if index is not None and name is not None:
        raise UserError(
            f"{name[3]}: label {name[1]!r} is a class name, but {index[3]} gives a class "
            f"index ({index[1]}): a list's labels are all indexes (0, 1, ...; names from "
            "data.list.classes) or all names"
        )


def _default_names(rows: list[Row], numeric_ok: bool = True) -> list[str]:
    labs = [lab for _, lab, _, _ in rows]
    if numeric_ok and all(lab.lstrip("-").isdigit() for lab in labs):
        return [str(i) for i in range(max(int(x) for x in labs) + 1)]
    return sorted(set(labs))


@register_source("list")
def read_list(cfg: DataConfig) -> LabelledSet:
    return load_list(source_root(cfg), cfg.list)  # type: ignore[arg-type]

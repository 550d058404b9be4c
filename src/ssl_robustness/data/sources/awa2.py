"""Source `awa2`: Animals with Attributes 2's `JPEGImages/<class>/` folders and classes.txt."""

from __future__ import annotations

from pathlib import Path

from ...config import DataConfig
from ...errors import UserError
from ..listing.labelled import LabelledSet
from .common import read_utf8, source_root
from .folder import load_folder
from .registry import register_source


def load_awa2(root: Path) -> LabelledSet:
    """Animals with Attributes 2: `Animals_with_Attributes2/JPEGImages/<class>/` + classes.txt."""
    base = (
        root / "Animals_with_Attributes2" if (root / "Animals_with_Attributes2").is_dir() else root
    )
    images, classes_file = base / "JPEGImages", base / "classes.txt"
    for needed in (images, classes_file):
        if not needed.exists():
            raise UserError(f"data.root: AwA2 layout expects {needed}")
    names = []
    for lineno, line in enumerate(read_utf8(classes_file).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise UserError(f"{classes_file}:{lineno}: expected '<index> <class>', got {line!r}")
        names.append(parts[1])
    lset = load_folder(images, class_names=names)
    lset.items = [f"JPEGImages/{item}" for item in lset.items]
    lset.root = base
    return lset


@register_source("awa2", class_word="class folder")
def read_awa2(cfg: DataConfig) -> LabelledSet:
    return load_awa2(source_root(cfg))

"""Sources: each reads one real on-disk layout into a LabelledSet, one file per layout,
registered under the `data.source` names it reads (`registry.register_source`). A new layout
is one new file here, imported below, and its name in `config.data.SourceName`.

Errors name the file (and line) at fault: a missing root, an empty class folder, a label out
of range, an unknown class, a duplicate path. Shared checks and the download helpers are in
`common`."""

from __future__ import annotations

from ...config import DataConfig
from ...errors import UserError
from ..listing.classes import select_classes
from ..listing.labelled import LabelledSet
from . import awa2, cifar, cifar_subset, digits, folder, list_files, npz  # noqa: F401 - they register
from .registry import register_source, registered_sources, source_entry

__all__ = ["load_source", "read_source", "register_source", "registered_sources"]


def load_source(cfg: DataConfig) -> LabelledSet:
    """Read the configured source into a LabelledSet, keeping the classes `data.classes` keeps."""
    return select_classes(read_source(cfg), cfg)


def read_source(cfg: DataConfig) -> LabelledSet:
    """Every class of the configured source, before the class filters."""
    entry = source_entry(cfg.source)
    lset = entry.read(cfg)
    if lset.num_classes < 2:  # checked here, not in the readers, which also serve tools
        raise UserError(
            f"data.root: {cfg.root}: only one {entry.class_word} ({', '.join(lset.class_names)}); "
            "a study compares classes, so it needs at least 2"
        )
    return lset

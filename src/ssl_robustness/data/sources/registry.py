"""The source registry: each layout's reader, filed under the `data.source` names it reads
(as methods are filed by `methods.registry.register_method`).

A source is one file in `data/sources/`: a `(cfg: DataConfig) -> LabelledSet` reader
decorated with `register_source("name", ...)`, imported by `sources/__init__.py` so it is
filed; its name is added to `config.data.SourceName`.

    @register_source("myformat")
    def read_myformat(cfg: DataConfig) -> LabelledSet:
        return load_myformat(source_root(cfg))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ...config import DataConfig
from ..listing.labelled import LabelledSet

Reader = Callable[[DataConfig], LabelledSet]
R = TypeVar("R", bound=Reader)


@dataclass(frozen=True)
class SourceEntry:
    name: str
    read: Reader  # every class of the source, before the class filters
    class_word: str  # what one class is on disk, in the error for a one-class source


_REGISTRY: dict[str, SourceEntry] = {}


def register_source(*names: str, class_word: str = "class") -> Callable[[R], R]:
    """Function decorator: `data.source: <name>` reads with this reader, for each of `names`.
    A name another reader holds is refused (re-running the file that defines it, as a reload
    does, re-files the same reader), as `config.base.register_once` refuses a taken name."""

    def register(read: R) -> R:
        for name in names:
            held = _REGISTRY.get(name)
            if held is not None and (held.read.__module__, held.read.__qualname__) != (
                read.__module__,
                read.__qualname__,
            ):
                raise TypeError(
                    f"data source {name!r} is taken by {held.read.__module__}."
                    f"{held.read.__qualname__}"
                )
            _REGISTRY[name] = SourceEntry(name, read, class_word)
        return read

    return register


def source_entry(name: str) -> SourceEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"no data source registered as {name!r}: decorate its reader with "
            "data.sources.registry.register_source (and import its file in sources/__init__.py)"
        ) from None


def registered_sources() -> list[str]:
    return sorted(_REGISTRY)

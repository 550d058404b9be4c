"""Methods: one small file each, registered by their settings class (see `registry`), all
trained by `engine.loop.fit`. Importing this package registers the built-in methods."""

from __future__ import annotations

from . import byol, mocov2, simclr, simsiam, supervised  # noqa: F401 - they register themselves
from .registry import (
    MethodEntry,
    MethodSetup,
    build_method,
    is_self_supervised,
    method_entry,
    method_views,
    register_method,
    registered_methods,
    views_per_step,
)

__all__ = [
    "MethodEntry",
    "MethodSetup",
    "build_method",
    "is_self_supervised",
    "method_entry",
    "method_views",
    "register_method",
    "registered_methods",
    "views_per_step",
]

"""Methods: one small file each, registered by their settings class (see `registry`), all
trained by `engine.loop.fit`. Importing this package registers the built-in methods."""

from __future__ import annotations

from . import bcl, byol, mocov2, sdclr, simclr, simsiam, supervised  # noqa: F401 - they register
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

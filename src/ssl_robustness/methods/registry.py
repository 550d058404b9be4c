"""The method registry, keyed by a method's settings class (like timm's `register_model`).

A method is one file under `methods/` (or anywhere a study imports): its settings class (a
`config.MethodBase` subclass, which registers itself with the study config on definition),
and its `Method` class decorated with `register_method(settings, views=..., self_supervised=...)`.
Everything else is derived from here: how to build it, the views it trains on (their number is
its views per step), and whether it is self-supervised (its scenario in the study).

    @register_method(MyConfig, views=(MOCOV2_VIEW, MOCOV2_VIEW), self_supervised=True)
    class MyMethod(TwoViewMethod):
        @classmethod
        def from_setup(cls, backbone, cfg, setup): ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from torch import nn

from ..config import AugmentationConfig, MethodBase
from ..engine.step import Method
from .augment import ViewSpec, adjust_view

M = TypeVar("M", bound=type[Method])


@dataclass(frozen=True)
class MethodSetup:
    """What a method may need besides its settings and backbone."""

    num_classes: int
    class_counts: np.ndarray
    train_size: int
    views: tuple[ViewSpec, ...]  # the registered views, with the study's adjustments


@dataclass(frozen=True)
class MethodEntry:
    settings: type[MethodBase]
    method: type[Method]  # has `from_setup(backbone, cfg, setup)`
    views: tuple[ViewSpec, ...]  # one per view a training step draws
    self_supervised: bool

    @property
    def views_per_step(self) -> int:
        return len(self.views)


_REGISTRY: dict[type[MethodBase], MethodEntry] = {}


def register_method(
    settings: type[MethodBase], *, views: tuple[ViewSpec, ...], self_supervised: bool
) -> Callable[[M], M]:
    """Class decorator: `settings` in a study config trains this method on `views`."""

    def register(cls: M) -> M:
        if not hasattr(cls, "from_setup"):
            raise TypeError(f"{cls.__name__}: a registered method needs a from_setup classmethod")
        _REGISTRY[settings] = MethodEntry(settings, cls, tuple(views), self_supervised)
        return cls

    return register


def unregister_method(settings: type[MethodBase]) -> None:
    _REGISTRY.pop(settings, None)


def method_entry(cfg: MethodBase | type[MethodBase]) -> MethodEntry:
    key = cfg if isinstance(cfg, type) else type(cfg)
    try:
        return _REGISTRY[key]
    except KeyError:
        raise ValueError(
            f"no method registered for {key.__name__}: decorate its Method class with "
            "methods.registry.register_method (and import its file before building it)"
        ) from None


def registered_methods() -> list[MethodEntry]:
    return list(_REGISTRY.values())


def is_self_supervised(cfg: MethodBase) -> bool:
    return method_entry(cfg).self_supervised


def views_per_step(cfg: MethodBase) -> int:
    return method_entry(cfg).views_per_step


def method_views(cfg: MethodBase, aug: AugmentationConfig | None) -> tuple[ViewSpec, ...]:
    """The views a method trains on, with the study's adjustments applied."""
    views = method_entry(cfg).views
    if aug is None:
        return views
    return tuple(adjust_view(v, aug.crop_min_scale, aug.flip, aug.color) for v in views)


def build_method(
    cfg: MethodBase,
    backbone: nn.Module,
    *,
    num_classes: int,
    class_counts: np.ndarray,
    train_size: int,
    augmentation: AugmentationConfig | None = None,
) -> Method:
    """The method a config names, around `backbone`."""
    entry = method_entry(cfg)
    setup = MethodSetup(num_classes, class_counts, train_size, method_views(cfg, augmentation))
    return entry.method.from_setup(backbone, cfg, setup)  # type: ignore[attr-defined]

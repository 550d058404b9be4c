"""The base of every config section: unknown keys, booleans for numbers, inf and nan are
errors that name their key."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

BOOL_ERROR = "bool_not_a_value"  # the error type that names its key in its context


class Strict(BaseModel):
    """Unknown keys are errors; the docstring under each field is its documentation
    (`ssl-robustness config` prints it, and a test checks that every key has one)."""

    # allow_inf_nan=False: `lr: .inf` or `exponent: .nan` would pass every range check (nan
    # compares false) and fail, or silently poison a number, only much later
    model_config = ConfigDict(
        extra="forbid",
        protected_namespaces=(),
        use_attribute_docstrings=True,
        allow_inf_nan=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: Any) -> Any:
        """pydantic reads `epochs: true` as 1 and `seeds: [true]` as seed 1: a YAML boolean
        where a number (or text) is expected is a mistake, never a value."""
        if not isinstance(data, dict):
            return data
        for key, v in data.items():
            field = cls.model_fields.get(key) if isinstance(key, str) else None
            if field is not None and _holds_bool(v) and not _takes_bool(field.annotation):
                raise PydanticCustomError(
                    BOOL_ERROR,
                    "true/false is a boolean, not a value of this key (got {got})",
                    {"key": key, "got": repr(v)},
                )
        return data


class OmitsUnset(BaseModel):
    """Keys added after configs were in use: each is left out of the dump while it is None, so
    configs that do not set it dump (and key their caches) exactly as before it existed. A mixin
    of config sections (`class ImportedConfig(Strict, OmitsUnset)`)."""

    omit_when_none: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's own keys add to its parents' (never replace them: that would put a
        parent's key back in every dump, and so change every cache key)."""
        super().__pydantic_init_subclass__(**kwargs)
        inherited = [k for base in cls.__mro__[1:] for k in getattr(base, "omit_when_none", ())]
        cls.omit_when_none = tuple(dict.fromkeys([*inherited, *cls.omit_when_none]))

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key in self.omit_when_none:
            if getattr(self, key) is None:
                data.pop(key, None)
        return data


def register_once(table: dict[str, type], name: str, cls: type, what: str) -> None:
    """File `cls` under `name`, refusing a name another class holds (re-running the module that
    defines it, as a reload or a notebook does, re-files the same class)."""
    held = table.get(name)
    if held is not None and (held.__module__, held.__qualname__) != (
        cls.__module__,
        cls.__qualname__,
    ):
        raise TypeError(f"{what} {name!r} is taken by {held.__module__}.{held.__name__}")
    table[name] = cls


def _leaf_types(annotation: Any) -> set[Any]:
    """The types a field's annotation is made of (Literal values give their types)."""
    if get_origin(annotation) is Literal:
        return {type(a) for a in get_args(annotation)}
    args = get_args(annotation)
    if not args:
        return {annotation}
    return set().union(*(_leaf_types(a) for a in args))


def _takes_bool(annotation: Any) -> bool:
    """Whether a field may hold a boolean: a bool field, Any, or a section (a nested model
    checks its own fields)."""
    leaves = _leaf_types(annotation)
    return (
        bool in leaves
        or Any in leaves
        or any(isinstance(t, type) and issubclass(t, BaseModel) for t in leaves)
    )


def _holds_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return True
    if isinstance(v, list | tuple):
        return any(_holds_bool(x) for x in v)
    if isinstance(v, dict):
        return any(_holds_bool(x) for x in v.values())
    return False


def _non_negative_seed(v: int) -> int:
    """numpy's generators refuse negative seeds deep inside data preparation: refuse them here."""
    if v < 0:
        raise ValueError("a seed must be >= 0")
    return v

"""What changes a cache key: the one place that decides when a finished run is reused.

A representation's directory, an evaluation's directory, the image cache and each evaluation's
seed are named by hashes of canonical JSON. Everything that goes into those hashes is composed
here, so a renamed config field, a new key or a reordered dict is seen in one file, and the
pinned keys of `tests/test_cache_keys.py` (and `tests/test_method_registry.py`) fail on any
change that would silently send every finished study back to training.

Rules that keep old keys valid when the config grows:
- a key added to a section after configs were in use is left out of the dump while it is unset
  (`config.base.OmitsUnset` for a model's own keys: the schema's rule, kept with the schema;
  `LIST_KEYS_SINCE` and the `classes`/`test_root` checks of `data_key` for the data section);
- a change that must invalidate old runs says so with a marker (`BATCH_ORDER`).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .config import DataConfig


def config_hash(obj: Any, length: int = 10) -> str:
    """A stable short hash of a JSON-able description: keys run directories and caches."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def dump(model: BaseModel | None) -> Any:
    """A section as it enters a key (JSON types; None stays None)."""
    return model.model_dump(mode="json") if model is not None else None


# ----------------------------------------------------------------------------- data
# keys added to data.list after the cache keys were fixed, with the value that behaves as before
# them: in the key only when set to something else
LIST_KEYS_SINCE: dict[str, Any] = {"label_from": "column", "relative_to": "root", "roots": {}}


def data_key(cfg: DataConfig) -> str:
    """The hash of what decides a study's images. `classes` and `test_root` change which
    images a study sees (a random-init or imported representation is keyed by this alone):
    in the key only when set, so the keys of configs without them stay what they were."""
    d = cfg.model_dump(
        mode="json", include={"source", "root", "list", "image_size", "skip_bad_images"}
    )
    if d.get("list"):
        for key, before in LIST_KEYS_SINCE.items():
            if d["list"][key] == before:
                del d["list"][key]
    classes = cfg.classes.model_dump(mode="json", exclude_defaults=True)
    if classes:
        d["classes"] = classes
    if cfg.test_root is not None:
        d["test_root"] = str(cfg.test_root)
    return config_hash(d)


def image_cache_key(cfg: DataConfig, items: Sequence[str]) -> str:
    """The decoded image cache of a listing: adding or removing an image file makes a new one."""
    return config_hash({"data": data_key(cfg), "items": list(items)})


def items_key(items: Sequence[str], labels: Sequence[int]) -> str:
    """The items (and labels) an index set holds: runs are keyed by their very images, not by
    how they were drawn."""
    return config_hash({"items": list(items), "labels": list(labels)})


# ----------------------------------------------------------------------------- representations
# batches reach the model in the drawn order, no longer sorted by item index (which followed
# the labels): runs trained before are not reused
BATCH_ORDER = "drawn"


def data_settings(cfg: DataConfig) -> dict[str, Any]:
    """What every representation of a study shares: its images, splits and subset profile."""
    return {
        "data": data_key(cfg),
        "split": dump(cfg.split),
        "imbalance": dump(cfg.imbalance),
        "image_size": cfg.image_size,
    }


def trained_settings(
    data: DataConfig,
    images: str | None,
    method: BaseModel,
    train: BaseModel,
    augmentation: BaseModel | None,
    backbone: BaseModel | None,
) -> dict[str, Any]:
    """A trained representation (SL, SSL in-domain): its images and every setting of its run,
    and the method's `key_revision` where it has one (a change of its code that must not reuse
    runs trained before it; absent, so every other method's key stays as it was)."""
    settings = {
        **data_settings(data),
        "images": images,
        "method": dump(method),
        "train": dump(train),
        "augmentation": dump(augmentation),
        "backbone": dump(backbone),
        "batch_order": BATCH_ORDER,
    }
    revision = getattr(method, "key_revision", None)
    if revision is not None:
        settings["revision"] = revision
    return settings


def imported_settings(
    data: DataConfig,
    imported: BaseModel,
    input_size: int,
    *,
    published: dict[str, Any] | None = None,
    file: tuple[int, float] | None = None,
) -> dict[str, Any]:
    """An imported checkpoint: a published name by its URL and checksum (`published`), a file
    by its size and mtime (`file`)."""
    base = {**data_settings(data), "input_size": input_size, "imported": dump(imported)}
    if published is not None:
        return {**base, "published": published}
    assert file is not None, "an imported file is keyed by its size and mtime"
    size, mtime = file
    return {**base, "size": size, "mtime": mtime}


def random_init_settings(data: DataConfig, backbone: BaseModel | None) -> dict[str, Any]:
    return {**data_settings(data), "backbone": dump(backbone)}


def representation_key(
    scenario: str, method: str, subset: str | None, seed: int, settings: dict[str, Any]
) -> str:
    return config_hash(
        {"scenario": scenario, "method": method, "subset": subset, "seed": seed, **settings}
    )


# ----------------------------------------------------------------------------- evaluations
def evaluation_key(settings: dict[str, Any], adapt_items: str, test_items: str) -> str:
    """An evaluation's directory: its settings and the very images it adapts and tests on."""
    return config_hash({**settings, "adapt_items": adapt_items, "test_items": test_items}, 8)


def evaluation_seed(representation_dir: str, evaluation_dir: str, seed: int) -> int:
    """Every evaluation seeds itself from its own identity, never from global state, so a
    resumed or rebuilt evaluation gives the numbers of an uninterrupted run."""
    key = config_hash({"rep": representation_dir, "eval": evaluation_dir, "seed": seed}, 8)
    return int(key, 16)

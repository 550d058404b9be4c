"""Where a listing's image cache lies, and what is recorded beside it: the bad images decoding
skipped and the duplicate sets found in it, so that listing alone can leave out what preparing
will."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...atomic import write_json
from ...cache_keys import image_cache_key
from ...config import DataConfig
from ...layout import DataLayout
from ..listing.duplicates import DuplicateSet
from ..listing.labelled import LabelledSet
from ..listing.near_duplicates import FINDER_VERSION
from .images import BadImage, meta_path


def _duplicates_record(cache_file: Path) -> Path:
    return cache_file.with_suffix(".duplicates.json")


def recorded_duplicates(cache_file: Path, cfg: DataConfig) -> list[DuplicateSet] | None:
    """The sets found in this very cache (its SHA-256) with these settings, else None."""
    try:
        record = json.loads(_duplicates_record(cache_file).read_text())
        meta = json.loads(meta_path(cache_file).read_text())
        if record["cache_sha256"] != meta["sha256"] or record["settings"] != _dup_settings(cfg):
            return None
        return [
            DuplicateSet(str(s["kind"]), tuple(s["items"]), s.get("min_similarity"))
            for s in record["sets"]
        ]
    except (OSError, KeyError, TypeError, ValueError):
        return None


def record_duplicates(cache_file: Path, cfg: DataConfig, sets: list[DuplicateSet]) -> None:
    try:
        sha = json.loads(meta_path(cache_file).read_text())["sha256"]
    except (OSError, KeyError, TypeError, ValueError):
        return
    write_json(
        _duplicates_record(cache_file),
        {
            "cache_sha256": sha,
            "settings": _dup_settings(cfg),
            "sets": [
                {"kind": s.kind, "items": list(s.items), "min_similarity": s.min_similarity}
                for s in sets
            ],
        },
    )


def _dup_settings(cfg: DataConfig) -> dict[str, Any]:
    """What the recorded sets depend on: with near, the finder's version and thresholds too
    (a record of another finder is found again); without, as it always was."""
    d = cfg.duplicates
    if not d.near:
        return {"near": False, "near_threshold": None}
    return {
        "near": True,
        "near_threshold": d.near_threshold,
        "near_similarity": d.near_similarity,
        "near_finder": FINDER_VERSION,
    }


def image_cache_file(
    cfg: DataConfig, directory: Path, lset: LabelledSet, size: int | None = None
) -> Path:
    """The decoded images of `lset` at `size` (default `cfg.image_size`); keyed by the item
    list too: adding or removing an image file makes a new cache."""
    return DataLayout(directory).image_cache(
        image_cache_key(cfg, lset.items), size or cfg.image_size
    )


def recorded_bad(
    cfg: DataConfig, directory: Path, lset: LabelledSet, cache_file: Path | None = None
) -> list[BadImage]:
    """With `skip_bad_images`, the bad images the existing image cache (`cache_file`, worked
    out here if not given) records, none without a readable record of `lset`'s length: the
    listing then drops what decoding will. Not verified here; `build_image_cache` does that."""
    if not cfg.skip_bad_images:
        return []
    cache_file = cache_file or image_cache_file(cfg, directory, lset)
    try:  # read quietly: a damaged record is `build_image_cache`'s to report
        meta = json.loads(meta_path(cache_file).read_text())
        if meta["inputs"]["count"] != len(lset):
            return []
        bad = [BadImage(int(b["index"]), str(b["message"])) for b in meta["bad"]]
    except (OSError, KeyError, TypeError, ValueError):
        return []
    return bad if all(0 <= b.index < len(lset) for b in bad) else []

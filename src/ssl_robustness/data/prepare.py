"""Preparing a study's data: the listing decoded into the image cache (its bad images
recorded), the duplicates found and recorded, and the manifests and stats written."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import DataConfig, EvaluationConfig
from .cache_records import image_cache_file, record_duplicates, recorded_bad, recorded_duplicates
from .duplicates import describe, find_duplicates
from .image_store import ImageStore
from .images import BadImage, build_image_cache
from .labelled import LabelledSet
from .listing import arrange_duplicates, arrange_without, duplicate_drops, kept_mask
from .purge import copies_left, purged_count
from .sources import read_source, select_classes
from .stats import write_data_manifests
from .study_data import StudyData


def prepare_data(
    cfg: DataConfig,
    directory: Path,
    evaluation: EvaluationConfig | None = None,
    seeds: list[int] | None = None,
) -> StudyData:
    """Load and check the listing (fails in a second if a class cannot meet the splits, probe
    set or subsets), then decode (cached); write the manifests and stats of the given study
    seeds (default [0])."""
    listing = read_source(cfg)
    lset = select_classes(listing, cfg)
    cache_file = image_cache_file(cfg, directory, lset)
    recorded = recorded_bad(cfg, directory, lset, cache_file)
    data = arrange_without(lset, recorded, cfg, directory, evaluation, listing)
    directory.mkdir(parents=True, exist_ok=True)
    images, bad_records = build_image_cache(
        lset,
        np.arange(len(lset)),
        cfg.image_size,
        cache_file,
        skip_bad=cfg.skip_bad_images,
        workers=cfg.decode_workers,
        content_fingerprint=cfg.fingerprint == "content",
    )
    if bad_records != recorded:  # the cache was (re)built: its own bad images
        data = arrange_without(lset, bad_records, cfg, directory, evaluation, listing)
    cache = images
    if bad_records:
        images = images[np.flatnonzero(kept_mask(lset, bad_records))]
    data.store = ImageStore(images, data.source, cfg, directory)
    data = _with_duplicates(data, cache, lset, bad_records, cache_file, evaluation, listing)
    write_data_manifests(data, seeds or [0])
    return data


def _with_duplicates(
    data: StudyData,
    cache: np.ndarray,
    lset: LabelledSet,
    bad: list[BadImage],
    cache_file: Path,
    evaluation: EvaluationConfig | None,
    listing: LabelledSet,
) -> StudyData:
    """Find the duplicates among the decoded images (or take those recorded beside the cache),
    drop or link them as data.duplicates.action says, and describe where they ended up."""
    cfg, source = data.cfg, data.source
    assert source is not None and data.store is not None
    sets = recorded_duplicates(cache_file, cfg)
    if sets is None:
        sets = find_duplicates(data.store.images, source, cfg.duplicates)
        record_duplicates(cache_file, cfg, sets)
    if sets and cfg.duplicates.action != "report":
        data = arrange_duplicates(lset, bad, sets, cfg, data.directory, evaluation, listing)
        kept = cache[np.flatnonzero(kept_mask(lset, bad + duplicate_drops(lset, sets, cfg)))]
        data.store = ImageStore(kept, data.source, cfg, data.directory)
    label_of = {
        item: lset.class_names[int(y)] for item, y in zip(lset.items, lset.labels, strict=True)
    }
    where = _where(data)
    data.duplicates = describe(sets, where, label_of)
    data.duplicates["purged"] = purged_count(data.dropped)
    data.duplicates["held_out_copies_left"] = copies_left(sets, where)
    return data


def _where(data: StudyData) -> dict[str, str]:
    """Each item's place: pool (pretraining), probe set, val or test."""
    place = np.array(data.split, dtype=object)
    place[place == "train"] = "pool"
    place[data.probe_balanced] = "probe set"
    return dict(zip(data.items, place.tolist(), strict=True))

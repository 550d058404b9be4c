"""Preparing a study's data, the stages in order: the source read and its classes filtered
(`sources/`, `listing/`), the bad images and duplicates the image cache records left out, the
listing arranged into splits, probe set and subset plans (`arrange.py`), then the images
decoded into the cache (`store/`), the duplicates found and recorded, and the manifests and
stats written (`stats.py`).

`list_data` is the listing stage alone, with no image decoded (`run --plan`); `prepare_data`
runs it before decoding. The rest of the package comes in here."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import DataConfig, EvaluationConfig
from ..errors import UserError
from .arrange import arrange
from .listing.classes import select_classes
from .listing.duplicates import DuplicateSet, describe, find_duplicates, sets_only, to_drop
from .listing.labelled import LabelledSet
from .listing.purge import copies_left, held_out_copies, purged_count
from .sources import read_source
from .split.carve import listed_splits
from .split.feasibility import SplitInfeasible
from .stats import write_data_manifests
from .store.cache_records import (
    image_cache_file,
    record_duplicates,
    recorded_bad,
    recorded_duplicates,
)
from .store.image_store import ImageStore
from .store.images import BadImage, build_image_cache
from .study_data import StudyData
from .subsets.advice import with_ways_out


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


def list_data(
    cfg: DataConfig, directory: Path, evaluation: EvaluationConfig | None = None
) -> StudyData:
    """The listing stage: labels, splits, probe set and subset plans, every feasibility check,
    and no image decoded (`run --plan`; `prepare_data` runs it before decoding). With
    `skip_bad_images`, the bad images an existing image cache records are left out, as
    `prepare_data` will leave them out."""
    listing = read_source(cfg)
    lset = select_classes(listing, cfg)
    cache_file = image_cache_file(cfg, directory, lset)
    bad = recorded_bad(cfg, directory, lset, cache_file)
    sets = recorded_duplicates(cache_file, cfg) if cfg.duplicates.action != "report" else None
    if sets:  # as prepare_data will arrange them; without a record, as if there were none
        return arrange_duplicates(lset, bad, sets, cfg, directory, evaluation, listing)
    return arrange_without(lset, bad, cfg, directory, evaluation, listing)


def arrange_without(
    lset: LabelledSet,
    bad: list[BadImage],
    cfg: DataConfig,
    directory: Path,
    evaluation: EvaluationConfig | None,
    listing: LabelledSet,
    linked: list[DuplicateSet] | None = None,
) -> StudyData:
    """`arrange` the listing less its bad images; a natural/power plan the smallest classes
    cannot meet says which class filters can."""
    if bad:
        lset = lset.take(np.flatnonzero(kept_mask(lset, bad)))
    try:
        return arrange(
            lset,
            cfg,
            directory,
            evaluation,
            listing=listing,
            bad=[b.message for b in bad],
            linked=linked,
        )
    except UserError as err:
        raise with_ways_out(err, cfg, lset, listing, directory, evaluation) from None


def arrange_duplicates(
    lset: LabelledSet,
    bad: list[BadImage],
    sets: list[DuplicateSet],
    cfg: DataConfig,
    directory: Path,
    evaluation: EvaluationConfig | None,
    listing: LabelledSet,
) -> StudyData:
    """The arrangement with data.duplicates.action applied: drop, or group (one split each);
    with both, training-side copies of a listed val/test image leave the pool. A set filed
    under two classes is not linked (reported instead: which label is right is unknown)."""
    drops = duplicate_drops(lset, sets, cfg)
    label_of = dict(zip(lset.items, lset.labels.tolist(), strict=True))
    linked = (
        [
            s
            for s in sets_only(sets)
            if len({label_of.get(i) for i in s.items if i in label_of}) == 1
        ]
        if cfg.duplicates.action == "group"
        else None
    )
    try:
        data = arrange_without(lset, bad + drops, cfg, directory, evaluation, listing, linked)
    except SplitInfeasible as err:
        raise UserError(
            "\n".join([str(err), *duplicate_causes(lset, err.classes, drops, linked, cfg)])
        ) from None
    data.bad_images = [b.message for b in bad]
    data.dropped = [b.message for b in drops]
    return data


def duplicate_causes(
    lset: LabelledSet,
    classes: tuple[str, ...],
    drops: list[BadImage],
    linked: list[DuplicateSet] | None,
    cfg: DataConfig,
) -> list[str]:
    """What data.duplicates.action did to the classes a split size failed on: the images it
    left out (drop), or the largest duplicate set it made one group (group)."""
    action = cfg.duplicates.action
    listed = lset.class_counts()
    dropped = np.bincount(lset.labels[[b.index for b in drops]], minlength=lset.num_classes)
    label_of = dict(zip(lset.items, lset.labels.tolist(), strict=True))
    largest = np.zeros(lset.num_classes, dtype=np.int64)
    for s in linked or []:
        c = label_of[s.items[0]]
        largest[c] = max(largest[c], len(s.items))
    out = []
    for name in classes:
        c = lset.class_names.index(name)
        if dropped[c]:
            out.append(
                f"  '{name}': {dropped[c]} of its {listed[c]} listed images were left out as "
                f"duplicates (data.duplicates.action: {action})"
            )
        elif largest[c] > 1:
            out.append(
                f"  '{name}': {largest[c]} of its {listed[c]} listed images are one duplicate "
                "set, linked into one group (data.duplicates.action: group keeps a set in one "
                "split)"
            )
    if out:
        out.insert(0, "duplicates behind it:")
    return out


def duplicate_drops(lset: LabelledSet, sets: list[DuplicateSet], cfg: DataConfig) -> list[BadImage]:
    """The duplicates left out, as indices into `lset` with why: with drop and group, the
    training-side copies of listed val/test images (those never move); with drop, also all
    but one image of every other set."""
    if cfg.duplicates.action == "report":
        return []
    label_of = {item: str(y) for item, y in zip(lset.items, lset.labels, strict=True)}
    index = {item: i for i, item in enumerate(lset.items)}
    # a copy skipped as a bad image is already out; the set's other copies still count
    kept = [replace(s, items=tuple(i for i in s.items if i in index)) for s in sets]
    kept = [s for s in kept if len(s.items) > 1]
    listed = dict(zip(lset.items, listed_splits(lset, cfg.split).tolist(), strict=True))
    why, rest = held_out_copies(kept, listed)
    if cfg.duplicates.action == "drop":
        for item, message in to_drop(rest, label_of).items():
            why.setdefault(item, message)
    return [BadImage(index[item], message) for item, message in sorted(why.items())]


def kept_mask(lset: LabelledSet, bad: list[BadImage]) -> np.ndarray:
    keep = np.ones(len(lset), dtype=bool)
    keep[[b.index for b in bad]] = False  # dropped by index: never by parsing paths
    return keep

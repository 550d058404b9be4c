"""Exact and near-duplicate images: found, reported with their paths, and optionally dropped
or kept in one split.

Exact: the same decoded pixels. Candidates share a hash of their cached (resized) pixels; a file
source's candidates are then decoded again at full resolution and compared byte for byte, so
two different photos that happen to shrink alike are never called copies.

Near (`near_duplicates.near_sets`): candidate pairs from a difference hash within
`near_threshold` bits and from nearest neighbours of grey thumbnails, each confirmed by the
best shifted correlation of the two thumbnails (at least `near_similarity`); a set holds only
images that are all near each other (complete linkage), so a drifting video track is several
sets, not one chain. Each near set carries its weakest pair's similarity.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ...config import DuplicatesConfig
from ..store.images import to_rgb
from .labelled import LabelledSet
from .near_duplicates import near_sets_and_links

SHOWN_PATHS = 4  # paths a flagged set shows on `data stats` (the rest: "+N more")


@dataclass(frozen=True)
class DuplicateSet:
    """Items (paths relative to data.root, or ids) that are one image, or nearly."""

    kind: str  # "exact", "near", or LINK (a confirmed pair no set holds: purge only)
    items: tuple[str, ...]
    min_similarity: float | None = None  # near sets: the weakest pair's similarity


LINK = "near link"


def sets_only(sets: list[DuplicateSet]) -> list[DuplicateSet]:
    """The sets proper (exact and near), without the links: what drop keeps one of, group
    keeps in one split, and data stats counts."""
    return [s for s in sets if s.kind != LINK]


def find_duplicates(
    images: np.ndarray, lset: LabelledSet, cfg: DuplicatesConfig
) -> list[DuplicateSet]:
    """Exact sets, then (with `cfg.near`) near sets that are not one exact set, then the near
    links (confirmed pairs across two sets: held-out copies are purged over them too);
    `images` are the cached pixels of `lset`'s items, in order."""
    exact = exact_duplicates(images, lset)
    out = [DuplicateSet("exact", tuple(lset.items[i] for i in s)) for s in exact]
    if cfg.near:
        same = {frozenset(s.tolist()) for s in exact}
        sets, links = near_sets_and_links(images, cfg.near_threshold, cfg.near_similarity)
        for s, low in sets:
            if frozenset(s.tolist()) not in same:
                items = tuple(lset.items[i] for i in s)
                out.append(DuplicateSet("near", items, round(low, 4)))
        out += [DuplicateSet(LINK, tuple(lset.items[i] for i in s), round(v, 4)) for s, v in links]
    return out


def exact_duplicates(images: np.ndarray, lset: LabelledSet) -> list[np.ndarray]:
    """Sets (item indices, sorted) of images with the same decoded pixels."""
    source = lset.pixels if lset.pixels is not None else images
    sets = _same_bytes(source, range(len(lset)))
    if lset.pixels is not None or lset.root is None:
        return sets
    root = lset.root
    verified = []
    for s in sets:  # the cache is resized: the same small image may be two different photos
        full = [_full_pixels(root / lset.items[i]) for i in s]
        verified += [s[part] for part in _same_bytes(full, range(len(s)))]
    return sorted(verified, key=lambda s: int(s[0]))


def _full_pixels(path: Any) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        return np.asarray(to_rgb(img), dtype=np.uint8)


def _same_bytes(arrays: Any, indices: range) -> list[np.ndarray]:
    """Sets of two or more indices whose arrays have the same shape and bytes."""
    buckets: dict[bytes, list[int]] = {}
    for i in indices:
        a = np.ascontiguousarray(arrays[i])
        key = hashlib.blake2b(a.tobytes(), digest_size=16, person=str(a.shape)[:16].encode())
        buckets.setdefault(key.digest(), []).append(i)
    return [np.array(v) for v in buckets.values() if len(v) > 1]


def describe(
    sets: list[DuplicateSet],
    where: dict[str, str],
    label_of: dict[str, str],
) -> dict[str, Any]:
    """What each set crosses: `where` maps an item to its split (pool, probe set, val, test;
    items left out are 'dropped'), `label_of` to its class name. Links are counted, not
    listed as sets."""
    rows = []
    proper = sets_only(sets)
    links = len(sets) - len(proper)
    for s in proper:
        places = sorted({where.get(i, "dropped") for i in s.items})
        labels = sorted({label_of[i] for i in s.items})
        rows.append(
            {
                "kind": s.kind,
                "items": list(s.items),
                "size": len(s.items),
                "min_similarity": s.min_similarity,
                "splits": places,
                "classes": labels,
                "crosses_split": len(set(places) - {"dropped"}) > 1,
                "two_labels": len(labels) > 1,
            }
        )
    return {
        "exact_sets": sum(r["kind"] == "exact" for r in rows),
        "exact_images": sum(len(r["items"]) for r in rows if r["kind"] == "exact"),
        "near_sets": sum(r["kind"] == "near" for r in rows),
        "near_images": sum(len(r["items"]) for r in rows if r["kind"] == "near"),
        "crossing_a_split": sum(r["crosses_split"] for r in rows),
        "under_two_labels": sum(r["two_labels"] for r in rows),
        "near_links": links,
        "sets": rows,
    }


def duplicate_lines(report: dict[str, Any] | None, action: str, shown: int = 10) -> list[str]:
    """`data stats`' duplicate lines: counts, then the sets that cross a split or hold two
    labels, each with its first paths and a near set's weakest similarity (bounded: every
    path is in stats.json)."""
    if report is None:
        return []
    lines = [
        f"duplicates ({action}): {report['exact_sets']} exact sets ({report['exact_images']} "
        f"images), {report['near_sets']} near sets ({report['near_images']} images); "
        f"{report['crossing_a_split']} cross a split, {report['under_two_labels']} are filed "
        "under two classes"
        + (
            f"; {report['near_links']} near pairs across two sets (links: never merged into a "
            "set, but a copy of a listed val/test image is purged over them)"
            if report.get("near_links")
            else ""
        )
    ]
    flagged = [r for r in report["sets"] if r["crosses_split"] or r["two_labels"]]
    for r in flagged[:shown]:
        lines.append(_set_line(r))
    if len(flagged) > shown:
        lines.append(f"  ... and {len(flagged) - shown} more sets")
    if flagged:
        lines.append("  (full list in stats.json)")
    return lines


def _set_line(r: dict[str, Any]) -> str:
    """One flagged set: kind (a near set's size and weakest similarity), classes, splits, and
    its first SHOWN_PATHS paths."""
    classes = ", ".join(r["classes"])
    label = f"under two classes ({classes})" if r["two_labels"] else classes
    where = ("crosses " if r["crosses_split"] else "in ") + " / ".join(r["splits"])
    kind = r["kind"]
    if r.get("min_similarity") is not None:
        kind += f" ({len(r['items'])} images, min similarity {r['min_similarity']:.3f})"
    items = r["items"][:SHOWN_PATHS]
    more = len(r["items"]) - len(items)
    paths = ", ".join(items) + (f", +{more} more" if more else "")
    return f"  {kind}, {label}, {where}: {paths}"


def to_drop(sets: list[DuplicateSet], label_of: dict[str, str]) -> dict[str, str]:
    """action drop: item -> why. A set under one class keeps its first item; a set filed under
    two classes keeps none (which label is right is unknown)."""
    out: dict[str, str] = {}
    for s in sets:
        two = len({label_of[i] for i in s.items}) > 1
        for item in s.items if two else s.items[1:]:
            out.setdefault(
                item,
                f"{item}: {s.kind} duplicate under two classes"
                if two
                else f"{item}: {s.kind} duplicate of {s.items[0]}",
            )
    return out

"""Exact and near-duplicate images: found, reported with their paths, and optionally dropped
or kept in one split.

Exact: the same decoded pixels. Candidates share a hash of their cached (resized) pixels; a file
source's candidates are then decoded again at full resolution and compared byte for byte, so
two different photos that happen to shrink alike are never called copies.

Near: a 64-bit difference hash (Krawetz's dHash) of each cached image: grey levels averaged
over a 9x8 grid (area weights, so any image size works), one bit per horizontally adjacent pair
(is the left cell brighter?). Two images are near-duplicates when their hashes differ in at most
`near_threshold` bits (default 4 of 64); sets are the connected components of that relation.
Re-encoded, slightly rescaled or re-exposed copies and consecutive video frames land within a
few bits; unrelated images differ in about 32.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..config import DuplicatesConfig
from .images import to_rgb
from .labelled import LabelledSet

HASH_BITS = 64


@dataclass(frozen=True)
class DuplicateSet:
    """Items (paths relative to data.root, or ids) that are one image, or nearly."""

    kind: str  # "exact" or "near"
    items: tuple[str, ...]


def find_duplicates(
    images: np.ndarray, lset: LabelledSet, cfg: DuplicatesConfig
) -> list[DuplicateSet]:
    """Exact sets, then (with `cfg.near`) near sets that are not one exact set; `images` are
    the cached pixels of `lset`'s items, in order."""
    exact = exact_duplicates(images, lset)
    out = [DuplicateSet("exact", tuple(lset.items[i] for i in s)) for s in exact]
    if cfg.near:
        same = {frozenset(s.tolist()) for s in exact}
        for s in near_duplicates(difference_hashes(images), cfg.near_threshold):
            if frozenset(s.tolist()) not in same:
                out.append(DuplicateSet("near", tuple(lset.items[i] for i in s)))
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


def _area_matrix(size: int, cells: int) -> np.ndarray:
    """(cells, size): row j averages the input pixels under output cell j, by overlap."""
    edges = np.linspace(0, size, cells + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    pix = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def difference_hashes(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """The 64-bit dHash of every image (N, S, S, 3) uint8, as uint64."""
    n, size = len(images), images.shape[1]
    rows, cols = _area_matrix(size, 8), _area_matrix(images.shape[2], 9)
    weights = 1 << np.arange(HASH_BITS, dtype=np.uint64)
    out = np.zeros(n, dtype=np.uint64)
    for start in range(0, n, chunk):
        block = np.asarray(images[start : start + chunk], dtype=np.float64)
        grey = block @ np.array([0.299, 0.587, 0.114])
        small = rows @ grey @ cols.T  # (n, 8, 9)
        bits = (small[:, :, :-1] > small[:, :, 1:] + 1e-9).reshape(len(block), HASH_BITS)
        out[start : start + chunk] = (bits.astype(np.uint64) * weights).sum(axis=1)
    return out


def near_duplicates(hashes: np.ndarray, threshold: int) -> list[np.ndarray]:
    """Connected components (item indices, sorted; two or more) of hashes within `threshold`
    bits. Pairs are found by the pigeonhole rule: split the 64 bits into threshold + 1 bands;
    two hashes within `threshold` bits agree exactly on at least one band."""
    unique, inverse = np.unique(hashes, return_inverse=True)
    parent = np.arange(len(unique))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    bands = np.array_split(np.arange(HASH_BITS), threshold + 1)
    for band in bands:
        mask = np.uint64(sum(1 << int(b) for b in band))
        keys = unique & mask
        order = np.argsort(keys, kind="stable")
        cuts = np.flatnonzero(np.diff(keys[order])) + 1
        for members in np.split(order, cuts):
            if len(members) < 2:
                continue
            h = unique[members]
            dist = np.bitwise_count(h[:, None] ^ h[None, :])
            for a, b in zip(*np.nonzero(np.triu(dist <= threshold, k=1)), strict=True):
                ra, rb = find(int(members[a])), find(int(members[b]))
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(int(i)) for i in inverse])
    sets: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        sets.setdefault(int(r), []).append(i)
    return [np.array(v) for v in sorted(sets.values()) if len(v) > 1]


def describe(
    sets: list[DuplicateSet],
    where: dict[str, str],
    label_of: dict[str, str],
) -> dict[str, Any]:
    """What each set crosses: `where` maps an item to its split (pool, probe set, val, test;
    items left out are 'dropped'), `label_of` to its class name."""
    rows = []
    for s in sets:
        places = sorted({where.get(i, "dropped") for i in s.items})
        labels = sorted({label_of[i] for i in s.items})
        rows.append(
            {
                "kind": s.kind,
                "items": list(s.items),
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
        "sets": rows,
    }


def duplicate_lines(report: dict[str, Any] | None, action: str, shown: int = 10) -> list[str]:
    """`data stats`' duplicate lines: counts, then the sets that cross a split or hold two
    labels, with their paths (all of them in stats.json)."""
    if report is None:
        return []
    lines = [
        f"duplicates ({action}): {report['exact_sets']} exact sets ({report['exact_images']} "
        f"images), {report['near_sets']} near sets ({report['near_images']} images); "
        f"{report['crossing_a_split']} cross a split, {report['under_two_labels']} are filed "
        "under two classes"
    ]
    flagged = [r for r in report["sets"] if r["crosses_split"] or r["two_labels"]]
    for r in flagged[:shown]:
        classes = ", ".join(r["classes"])
        label = f"under two classes ({classes})" if r["two_labels"] else classes
        where = ("crosses " if r["crosses_split"] else "in ") + " / ".join(r["splits"])
        lines.append(f"  {r['kind']}, {label}, {where}: {', '.join(r['items'])}")
    if len(flagged) > shown:
        lines.append(f"  ... and {len(flagged) - shown} more in stats.json")
    return lines


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

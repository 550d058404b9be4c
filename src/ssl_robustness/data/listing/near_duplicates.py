"""Near-duplicate sets: candidates from two cheap searches, each pair confirmed by a stricter
measure, and sets in which every member is confirmed-near every other (no chaining).

Thumbnail: the grey levels of a cached image area-averaged to THUMB x THUMB cells.

Candidates (a pair is looked at when either search proposes it):
- dHash: the 64-bit difference hashes of two images differ in at most `near_threshold` bits
  (the pigeonhole band search of `hash_pairs`);
- neighbours: each image's NEIGHBOURS nearest images by the cosine of their mean-subtracted,
  L2-normalised KNN_THUMB x KNN_THUMB thumbnails (coarse, so a shift of a pixel or two moves
  a copy little), by chunked matrix products.

Confirmed: the similarity of two images is the largest normalised cross-correlation of their
thumbnails over shifts of up to SHIFT cells: for each shift the overlapping parts, each made
zero-mean and unit-norm; the second is also seen on grids moved by half a cell (an odd
pixel's shift), and each image's central CROP (of the side) against the other's whole, both
ways (a copy cropped and resized back is a zoom). A global brightness, contrast or colour
change, a JPEG re-encode, a small shift or a slight crop leave it near 1; different images on
one plain background stay well below it. A pair is near when its similarity is at least
`near_similarity`.
Thumbnails with almost no contrast (grey std under FLAT) say nothing to a correlation: they
are in no near set (an exact copy of one is still found as exact).

Sets (complete linkage): confirmed pairs in decreasing similarity, each joining the two sets
of its images only when every pair across them is near too (pairs no search proposed are
measured then); a set's `min_similarity` is its weakest pair. Video frames that drift a small
step a frame therefore make several sets of mutually near frames, not one chain.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

THUMB = 16  # cells a side of the confirming thumbnail
KNN_THUMB = 8  # cells a side of the neighbour search's thumbnail
NEIGHBOURS = 8  # nearest images proposed per image
SHIFT = 2  # largest shift (thumbnail cells) the confirmation tries
HALF_CELLS = ((0.5, 0.0), (0.0, 0.5), (0.5, 0.5))  # moved grids the second of a pair is seen on
CROP = 0.875  # the central part (of the side) also compared, for crops resized back
FLAT = 2.0  # grey std (0-255) under which a thumbnail has no structure to correlate
FINDER_VERSION = 4  # recorded with the sets: records of another finder are recomputed
HASH_BITS = 64
# near-identical images (a static camera's frames) share every hash band: a bucket larger than
# this proposes no pairs (the nearest neighbours still do, NEIGHBOURS per image), and no set
# grows past MAX_SET (its pairs are all measured: quadratic), the rest of such a cluster is
# further sets, their confirmed pairs links: tens of thousands of frames stay minutes
BUCKET_CAP = 64
MAX_SET = 256
GREY = np.array([0.299, 0.587, 0.114])


def area_matrix(size: int, cells: int, offset: float = 0.0) -> np.ndarray:
    """(cells, size): row j averages the input pixels under output cell j, by overlap; the
    grid moved by `offset` cells (its last cell then covers less)."""
    edges = np.clip(np.linspace(0, size, cells + 1) + offset * size / cells, 0, size)
    lo, hi = edges[:-1, None], edges[1:, None]
    pix = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(hi, pix + 1) - np.maximum(lo, pix), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def grey_thumbnails(
    images: np.ndarray,
    rows: int,
    cols: int,
    chunk: int = 4096,
    offset: tuple[float, float] = (0, 0),
) -> np.ndarray:
    """(N, rows, cols) float64 grey levels of (N, H, W, 3) uint8 images, area-averaged (on a
    grid moved by `offset` cells)."""
    r = area_matrix(images.shape[1], rows, offset[0])
    c = area_matrix(images.shape[2], cols, offset[1])
    out = np.empty((len(images), rows, cols))
    for start in range(0, len(images), chunk):
        block = np.asarray(images[start : start + chunk], dtype=np.float64)
        out[start : start + chunk] = r @ (block @ GREY) @ c.T
    return out


def difference_hashes(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """The 64-bit dHash of every image (N, S, S, 3) uint8, as uint64."""
    small = grey_thumbnails(images, 8, 9, chunk)
    bits = (small[:, :, :-1] > small[:, :, 1:] + 1e-9).reshape(len(images), HASH_BITS)
    weights = 1 << np.arange(HASH_BITS, dtype=np.uint64)
    return (bits.astype(np.uint64) * weights).sum(axis=1)


def hash_pairs(hashes: np.ndarray, threshold: int) -> np.ndarray:
    """(P, 2) index pairs (i < j) of hashes within `threshold` bits, by the pigeonhole rule:
    split the 64 bits into threshold + 1 bands; two hashes within `threshold` bits agree
    exactly on at least one band. A bucket of more than BUCKET_CAP is skipped (the neighbour
    search proposes its pairs)."""
    found: set[tuple[int, int]] = set()
    for band in np.array_split(np.arange(HASH_BITS), threshold + 1):
        mask = np.uint64(sum(1 << int(b) for b in band))
        keys = hashes & mask
        order = np.argsort(keys, kind="stable")
        cuts = np.flatnonzero(np.diff(keys[order])) + 1
        for members in np.split(order, cuts):
            if not 2 <= len(members) <= BUCKET_CAP:
                continue
            h = hashes[members]
            dist = np.bitwise_count(h[:, None] ^ h[None, :])
            a, b = np.nonzero(np.triu(dist <= threshold, k=1))
            lo, hi = np.minimum(members[a], members[b]), np.maximum(members[a], members[b])
            found.update(zip(lo.tolist(), hi.tolist(), strict=True))
    return _as_pairs(found)


def _as_pairs(found: set[tuple[int, int]]) -> np.ndarray:
    return np.array(sorted(found), dtype=np.int64).reshape(-1, 2)


def unit_vectors(thumbs: np.ndarray) -> np.ndarray:
    """Flattened thumbnails, mean-subtracted and L2-normalised (float32; flat ones are 0)."""
    flat = thumbs.reshape(len(thumbs), -1)
    centred = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return (centred / np.where(norm > 0, norm, 1)).astype(np.float32)


def neighbour_pairs(vectors: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """(P, 2) pairs (i < j): each row's k nearest other rows by dot product, in chunks of
    rows so that memory stays at chunk x N floats."""
    n = len(vectors)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros((0, 2), dtype=np.int64)
    found = []
    for start in range(0, n, chunk):
        sims = vectors[start : start + chunk] @ vectors.T
        rows = np.arange(len(sims))
        sims[rows, start + rows] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        me = np.repeat(start + rows, k)
        found.append(np.stack([me, top.ravel()], axis=1))
    pairs = np.sort(np.concatenate(found), axis=1)
    return np.unique(pairs, axis=0)


def shifted_similarity(
    thumbs: np.ndarray, pairs: np.ndarray, shift: int = SHIFT, chunk: int = 8192
) -> np.ndarray:
    """(P,) the largest normalised cross-correlation of each pair's thumbnails over shifts
    of up to `shift` cells (overlaps only, each zero-mean and unit-norm); 0 for a flat one."""
    out = np.full(len(pairs), -1.0)
    side_y, side_x = thumbs.shape[1:]
    for start in range(0, len(pairs), chunk):
        ta, tb = thumbs[pairs[start : start + chunk, 0]], thumbs[pairs[start : start + chunk, 1]]
        best = out[start : start + chunk]
        for dy in range(-shift, shift + 1):
            for dx in range(-shift, shift + 1):
                wa = ta[:, max(0, -dy) : side_y - max(0, dy), max(0, -dx) : side_x - max(0, dx)]
                wb = tb[:, max(0, dy) : side_y - max(0, -dy), max(0, dx) : side_x - max(0, -dx)]
                flat_a, flat_b = wa.reshape(len(ta), -1), wb.reshape(len(tb), -1)
                np.maximum(best, _correlation(flat_a, flat_b), out=best)
    return out


def _correlation(wa: np.ndarray, wb: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation; 0 where either row has (almost) no variance."""
    ca = wa - wa.mean(axis=1, keepdims=True)
    cb = wb - wb.mean(axis=1, keepdims=True)
    na, nb = np.linalg.norm(ca, axis=1), np.linalg.norm(cb, axis=1)
    ok = (na > 1e-6) & (nb > 1e-6)
    return np.where(ok, (ca * cb).sum(axis=1) / np.where(ok, na * nb, 1), 0.0)


def complete_linkage(
    n: int,
    pairs: np.ndarray,
    sims: np.ndarray,
    similarity: Callable[[np.ndarray], np.ndarray],
    threshold: float,
    links: list[tuple[int, int, float]] | None = None,
) -> list[tuple[list[int], float]]:
    """Sets (members sorted, weakest pair's similarity) of two or more of n items in which
    every pair is at least `threshold`: the candidate `pairs` at or above it, strongest first,
    each merging its two sets when all cross pairs are too and the merged set holds at most
    MAX_SET (`similarity` measures the pairs not yet known, (P, 2) -> (P,)). `links`, when
    given, receives every measured pair at or above `threshold` whose two items ended in
    different sets (a drifting track's frame near the next set's): no set joins them, but a
    copy of a held-out image must still leave the training side."""
    known = {(int(a), int(b)): float(s) for (a, b), s in zip(pairs, sims, strict=True)}
    member: dict[int, list[int]] = {}  # item -> its set's member list (shared)
    weakest: dict[int, float] = {}  # id(set) -> its weakest pair
    order = sorted((i for i, s in enumerate(sims) if s >= threshold), key=lambda i: (-sims[i], i))
    for i in order:
        a, b = int(pairs[i, 0]), int(pairs[i, 1])
        sa, sb = member.get(a, [a]), member.get(b, [b])
        if sa is sb or len(sa) + len(sb) > MAX_SET:
            continue
        cross = _cross(sa, sb, known, similarity)
        if cross.min() < threshold:
            continue
        merged = sorted(sa + sb)
        low = min(weakest.get(id(sa), 1.0), weakest.get(id(sb), 1.0), float(cross.min()))
        weakest.pop(id(sa), None), weakest.pop(id(sb), None)
        weakest[id(merged)] = low
        for m in merged:
            member[m] = merged
    sets = {id(s): s for s in member.values()}
    if links is not None:
        links += [
            (a, b, s)
            for (a, b), s in sorted(known.items())
            if s >= threshold and member.get(a, [a]) is not member.get(b, [b])
        ]
    return sorted(((s, weakest[k]) for k, s in sets.items()), key=lambda t: t[0][0])


def _cross(
    sa: list[int],
    sb: list[int],
    known: dict[tuple[int, int], float],
    similarity: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """The similarities of every pair across two sets, measuring (and remembering) new ones."""
    keys = [(min(x, y), max(x, y)) for x in sa for y in sb]
    missing = [k for k in keys if k not in known]
    if missing:
        for k, s in zip(missing, similarity(np.array(missing)), strict=True):
            known[k] = float(s)
    return np.array([known[k] for k in keys])


def near_sets(
    images: np.ndarray, threshold: int, near_similarity: float
) -> list[tuple[np.ndarray, float]]:
    """Near sets (item indices sorted, min similarity) of (N, H, W, 3) uint8 images: candidates
    by dHash within `threshold` bits and by neighbours, confirmed at `near_similarity`,
    complete linkage. Images with the same thumbnail are one item to the search (so that
    copies do not fill each other's neighbour slots) and are expanded again after."""
    return near_sets_and_links(images, threshold, near_similarity)[0]


def near_sets_and_links(
    images: np.ndarray, threshold: int, near_similarity: float
) -> tuple[list[tuple[np.ndarray, float]], list[tuple[np.ndarray, float]]]:
    """`near_sets`, and the confirmed pairs that no set holds together (as the items of both
    sides, and their similarity): each side's images share a thumbnail, so every image of a
    link is near every other, like a set's."""
    if len(images) < 2:
        return [], []
    thumbs = grey_thumbnails(images, THUMB, THUMB)
    _, first, inverse = np.unique(
        thumbs.reshape(len(thumbs), -1), axis=0, return_index=True, return_inverse=True
    )
    inverse = inverse.ravel()
    order = np.argsort(first)  # unique thumbnails in the order of their first image
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    reps, inverse = first[order], rank[inverse]
    thumbs = thumbs[reps]
    textured = thumbs.reshape(len(thumbs), -1).std(axis=1) >= FLAT
    pairs = _candidates(images[reps], thumbs, threshold)
    pairs = pairs[textured[pairs[:, 0]] & textured[pairs[:, 1]]]

    centres = _central_thumbnails(images[reps])
    halves = [grey_thumbnails(images[reps], THUMB, THUMB, offset=h) for h in HALF_CELLS]

    def similarity(p: np.ndarray) -> np.ndarray:
        return pair_similarity(thumbs, centres, p, halves)

    found: list[tuple[int, int, float]] = []
    clusters = complete_linkage(
        len(reps), pairs, similarity(pairs), similarity, near_similarity, found
    )
    # each thumbnail's images in index order, grouped in one sort (not a scan per thumbnail)
    by_rep = np.argsort(inverse, kind="stable")
    members = np.split(by_rep, np.cumsum(np.bincount(inverse, minlength=len(reps)))[:-1])
    links = [(np.sort(np.concatenate([members[a], members[b]])), s) for a, b, s in found]
    linked = {r for s, _ in clusters for r in s}
    copies = [([r], 1.0) for r in range(len(reps)) if r not in linked and len(members[r]) > 1]
    out = [(np.concatenate([members[r] for r in s]), low) for s, low in clusters]
    out += [(members[s[0]], low) for s, low in copies if textured[s[0]]]
    sets = sorted(((np.sort(m), low) for m, low in out), key=lambda t: int(t[0][0]))
    return sets, links


def _central_thumbnails(images: np.ndarray) -> np.ndarray | None:
    """Thumbnails of each image's central CROP, or None where the images are too small to
    leave a margin."""
    margin = round(images.shape[1] * (1 - CROP) / 2)
    if margin < 1:
        return None
    side = images.shape[1] - 2 * margin
    centre = images[:, margin : margin + side, margin : images.shape[2] - margin]
    return grey_thumbnails(centre, THUMB, THUMB)


def pair_similarity(
    thumbs: np.ndarray,
    centres: np.ndarray | None,
    pairs: np.ndarray,
    halves: list[np.ndarray] | None = None,
) -> np.ndarray:
    """(P,) each pair's similarity: the best shifted correlation of the whole thumbnails, of
    the first's whole against the second's on grids moved by half a cell (`halves`, so a shift
    of an odd pixel is met as well as an even one), and of either one's central crop against
    the other's whole (`centres`). Pairs come as (i < j): the result is one per pair."""
    best = shifted_similarity(thumbs, pairs)
    if len(pairs) == 0:
        return best
    n = len(thumbs)
    others = [(h, np.array([0, n])) for h in halves or []]
    if centres is not None:
        others += [(centres, np.array([n, 0])), (centres, np.array([0, n]))]
    for extra, move in others:
        both = np.concatenate([thumbs, extra])
        np.maximum(best, shifted_similarity(both, pairs + move), out=best)
    return best


def _candidates(images: np.ndarray, thumbs: np.ndarray, threshold: int) -> np.ndarray:
    """(P, 2) unique candidate pairs: dHash band matches and nearest neighbours."""
    by_hash = hash_pairs(difference_hashes(images), threshold)
    coarse = grey_thumbnails(images, KNN_THUMB, KNN_THUMB)
    by_knn = neighbour_pairs(unit_vectors(coarse), NEIGHBOURS)
    return np.unique(np.concatenate([by_hash, by_knn]), axis=0)

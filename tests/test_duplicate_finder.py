"""The near-duplicate finder (issue 31 section 4): copies that were cropped, re-encoded, moved
or re-coloured are found with their original; images that merely share a plain background are
not; a chain of frames each a small step from the next is not one set (complete linkage)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ssl_robustness.config import DuplicatesConfig
from ssl_robustness.data.listing.duplicates import describe, duplicate_lines, find_duplicates
from ssl_robustness.data.listing.labelled import LabelledSet
from ssl_robustness.data.listing.near_duplicates import shifted_similarity

NEAR = DuplicatesConfig(near=True)


def texture(seed: int, side: int = 32) -> np.ndarray:
    """A smooth random colour texture: 8x8 noise upscaled (bilinear), as a photo's detail."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    return np.asarray(small.resize((side, side), Image.BILINEAR))


def lset_of(n: int, labels: list[int] | None = None) -> LabelledSet:
    y = np.array(labels if labels is not None else [0] * n)
    return LabelledSet([f"img{i:02d}.png" for i in range(n)], y, ["cod", "eel"])


def near_groups(
    images: list[np.ndarray], labels: list[int] | None = None, cfg: DuplicatesConfig = NEAR
) -> list[set[int]]:
    found = find_duplicates(np.stack(images), lset_of(len(images), labels), cfg)
    return [{int(i[3:5]) for i in s.items} for s in found if s.kind == "near"]


def jpeg(img: np.ndarray, quality: int = 60) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def crop(img: np.ndarray, side: int = 28) -> np.ndarray:
    part = Image.fromarray(img[1 : 1 + side, 2 : 2 + side])
    return np.asarray(part.resize(img.shape[:2], Image.BILINEAR))


def shift(img: np.ndarray, dy: int = 2, dx: int = 1) -> np.ndarray:
    pad = np.pad(img, ((3, 3), (3, 3), (0, 0)), mode="edge")
    return pad[3 - dy : 3 - dy + img.shape[0], 3 - dx : 3 - dx + img.shape[1]]


def recolour(img: np.ndarray) -> np.ndarray:
    """Brighter, less contrast, warmer: a global change of each channel."""
    out = img.astype(float) * np.array([0.9, 0.8, 0.7]) + np.array([40, 25, 10])
    return np.clip(out, 0, 255).astype(np.uint8)


def test_a_chain_of_small_steps_is_not_one_set():
    """Frames morphing one texture into another, each a small step from the next: the old
    finder (connected components) merged them all; now no set holds both ends."""
    a, b = texture(1), texture(2)
    frames = [((1 - t) * a + t * b).round().astype(np.uint8) for t in np.linspace(0, 1, 50)]
    groups = near_groups(frames + [texture(s) for s in range(60, 66)])
    assert groups  # neighbouring frames are near-duplicates
    assert all(not {0, 49} <= g for g in groups)
    assert max(len(g) for g in groups) <= 25
    assert all(g <= set(range(50)) for g in groups)  # no distractor joins


def test_crop_jpeg_shift_and_recolour_are_found_with_their_base():
    """All four copies of one base are near each other too at 0.92 (a set is complete linkage:
    a copy near the base but not near the other copies is left out of it, as the crop is at the
    default 0.95, where it still pairs with the base alone: the next test)."""
    base = texture(7)
    copies = [crop(base), jpeg(base), shift(base, 1, 1), recolour(base)]
    others = [texture(s) for s in range(20, 30)]
    images = [base, *copies, *others]
    groups = near_groups(images, cfg=DuplicatesConfig(near=True, near_similarity=0.92))
    assert {0, 1, 2, 3, 4} in groups
    assert all(g <= {0, 1, 2, 3, 4} for g in groups)
    assert near_groups(images) == [{0, 2, 3, 4}]  # 0.95: the crop is not near every copy


def test_each_kind_of_copy_alone_is_a_pair_with_its_base():
    base = texture(8)
    others = [texture(s) for s in range(30, 36)]
    for make in (crop, jpeg, shift, recolour):
        assert near_groups([base, make(base), *others]) == [{0, 1}], make.__name__


def test_different_objects_on_one_plain_background_are_not_sets():
    rng = np.random.default_rng(4)
    images = []
    for k in range(12):
        img = np.full((32, 32, 3), (110, 150, 90), dtype=np.uint8)
        y, x = (10, 10) if k < 6 else rng.integers(2, 22, 2)  # half at one spot
        img[y : y + 9, x : x + 9] = rng.integers(0, 256, (9, 9, 3))
        images.append(img)
    images.append(np.full((32, 32, 3), (110, 150, 90), dtype=np.uint8))  # the bare background
    images.append(np.full((32, 32, 3), (112, 150, 90), dtype=np.uint8))  # nearly the same: flat
    assert near_groups(images) == []


def test_a_set_across_two_classes_is_reported_under_two_labels():
    base = texture(9)
    images = np.stack([base, jpeg(base), texture(40), texture(41)])
    lset = lset_of(4, [0, 1, 0, 1])
    sets = find_duplicates(images, lset, NEAR)
    label_of = {i: lset.class_names[int(y)] for i, y in zip(lset.items, lset.labels, strict=True)}
    rep = describe(sets, dict.fromkeys(lset.items, "pool"), label_of)
    (row,) = rep["sets"]
    assert row["kind"] == "near" and row["two_labels"] and row["classes"] == ["cod", "eel"]
    assert row["size"] == 2 and rep["under_two_labels"] == 1


def test_min_similarity_is_the_pearson_correlation_of_a_tiny_pair():
    """Two 16x16 grey noise images (the thumbnail is the image itself): every shift and crop
    decorrelates noise, so the similarity is the plain correlation of the pixels."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (16, 16)).astype(float)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).round()
    da, db = a - a.mean(), b - b.mean()
    by_hand = (da * db).sum() / np.sqrt((da**2).sum() * (db**2).sum())
    assert 0.92 < by_hand < 0.99
    images = np.stack([np.repeat(x[..., None], 3, axis=2) for x in (a, b)]).astype(np.uint8)
    (found,) = find_duplicates(images, lset_of(2), NEAR)
    assert found.kind == "near" and found.min_similarity == round(by_hand, 4)
    # the shifted correlation itself, on 3x3 thumbnails without shifts
    t = np.array([[[1, 2, 3], [4, 5, 6], [7, 8, 10]], [[2, 2, 3], [4, 6, 6], [7, 8, 9]]], float)
    x, y = t[0].ravel() - t[0].mean(), t[1].ravel() - t[1].mean()
    want = x @ y / np.sqrt((x @ x) * (y @ y))
    assert np.isclose(shifted_similarity(t, np.array([[0, 1]]), shift=0)[0], want)


def test_the_set_lines_of_data_stats_stay_bounded():
    items = [f"cod/frame{i:03d}.png" for i in range(30)] + ["eel/frame.png"]
    label_of = {i: i.split("/")[0] for i in items}
    from ssl_robustness.data.listing.duplicates import DuplicateSet

    sets = [DuplicateSet("near", tuple(items), 0.9312)] * 15
    rep = describe(
        sets, {i: "pool" for i in items[:20]} | {i: "test" for i in items[20:]}, label_of
    )
    lines = duplicate_lines(rep, "report")
    assert len(lines) == 1 + 10 + 2
    assert lines[0].startswith("duplicates (report): 0 exact sets (0 images), 15 near sets")
    assert lines[1] == (
        "  near (31 images, min similarity 0.931), under two classes (cod, eel), crosses pool "
        "/ test: cod/frame000.png, cod/frame001.png, cod/frame002.png, cod/frame003.png, "
        "+27 more"
    )
    assert lines[-2:] == ["  ... and 5 more sets", "  (full list in stats.json)"]
    assert rep["sets"][0]["min_similarity"] == 0.9312 and rep["sets"][0]["size"] == 31


def test_a_confirmed_pair_across_two_sets_still_purges_a_held_out_copy():
    """Complete linkage keeps 0 and 2 apart (0.90 < 0.95), so 1 sits in {0, 1} with its
    stronger partner; its confirmed 0.97 pair with test image 2 is a link: the purge and the
    copies-left count follow links as well as sets (a drifting track's frame next to a test
    frame stayed in the pool before)."""
    from ssl_robustness.data.listing.duplicates import LINK, DuplicateSet
    from ssl_robustness.data.listing.near_duplicates import complete_linkage
    from ssl_robustness.data.listing.purge import copies_left, held_out_copies

    known = {(0, 1): 0.99, (1, 2): 0.97, (0, 2): 0.90}

    def sim(p: np.ndarray) -> np.ndarray:
        return np.array([known[(int(a), int(b))] for a, b in p])

    pairs = np.array([[0, 1], [1, 2]])
    links: list[tuple[int, int, float]] = []
    assert complete_linkage(3, pairs, sim(pairs), sim, 0.95, links) == [([0, 1], 0.99)]
    assert links == [(1, 2, 0.97)]
    sets = [DuplicateSet("near", ("x0", "x1"), 0.99), DuplicateSet(LINK, ("x1", "x2"), 0.97)]
    listed = {"x0": "train", "x1": "train", "x2": "test"}
    purge, rest = held_out_copies(sets, listed)
    assert list(purge) == ["x1"] and rest == [sets[0]]  # a link is never a set to drop from
    assert copies_left(sets, {"x0": "pool", "x1": "pool", "x2": "test"}) == 1
    assert copies_left(sets[:1], {"x0": "pool", "x1": "pool", "x2": "test"}) == 0  # before


def test_a_static_cameras_frames_stay_linear_not_quadratic():
    """300 noisy frames of one scene share every hash band: the band search proposes no pairs
    for a bucket past BUCKET_CAP (the neighbours do), and no set grows past MAX_SET; the rest
    are further sets, every confirmed pair between them a link."""
    from ssl_robustness.data.listing import near_duplicates as N

    rng = np.random.default_rng(0)
    scene = texture(3).astype(float)
    frames = np.clip(scene[None] + rng.normal(0, 2, (300, 32, 32, 3)), 0, 255).astype(np.uint8)
    hashes = N.difference_hashes(frames)
    assert len(np.unique(hashes)) < 300 - N.BUCKET_CAP  # most frames share a hash: one bucket
    assert len(N.hash_pairs(hashes[:10], 4)) > 0  # small buckets still pair
    sets, links = N.near_sets_and_links(frames, 4, 0.9)
    assert max(len(s) for s, _ in sets) <= N.MAX_SET and len(sets) >= 2
    # a frame left out of every full set is still linked to one: its copies are never lost
    covered = {int(i) for s, _ in sets for i in s} | {int(i) for s, _ in links for i in s}
    assert covered == set(range(300))

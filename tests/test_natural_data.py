"""Natural data (issue 19): frames of one track stay in one split (`data.group_by`), the leak of
a per-image split is counted, sizes that whole groups cannot meet are errors that say what can,
and `data stats` prints what it shows without cutting or rounding it into a falsehood."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import write_image
from ssl_robustness.config import DataConfig, EvaluationConfig
from ssl_robustness.data.prepare import list_data, prepare_data
from ssl_robustness.data.split.whole_groups import reachable, take_whole_groups
from ssl_robustness.data.stats import stats_lines
from ssl_robustness.data.subsets.profiles import gini
from ssl_robustness.errors import UserError

TRACK = r"(track_\d+)_frame"


def _frames(root: Path, tracks: dict[str, list[int]]) -> Path:
    """root/<class>/track_<id>_frame_<f>.png: per class, one track per entry of that many
    frames (track ids unique across classes)."""
    k = 0
    for c, (name, sizes) in enumerate(tracks.items()):
        for t, frames in enumerate(sizes):
            for f in range(frames):
                write_image(root / name / f"track_{c}{t:02d}_frame_{f:02d}.png", k, size=8)
                k += 1
    return root


def _cfg(root: Path, group_by: dict | None = None, **split) -> DataConfig:
    return DataConfig(
        source="folder",
        root=root,
        image_size=8,
        split={"val_per_class": 3, "test_per_class": 6, **split},
        imbalance={"profile": "natural"},
        group_by=group_by,
    )


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    sizes = [3, 4, 5]
    return _frames(
        tmp_path_factory.mktemp("frames"),
        {"cod": sizes * 4, "eel": sizes * 3, "ray": sizes * 2 + [3]},
    )


def _groups_of(data, idx) -> set[str]:
    return set(data.item_group[idx].tolist())


def test_grouped_frames_never_cross_val_test_probe_or_pool(frames, tmp_path):
    data = list_data(_cfg(frames, {"pattern": TRACK}), tmp_path, EvaluationConfig())
    sets = {
        "val": data.indices("val"),
        "test": data.indices("test"),
        "probe": data.probe_balanced,
        "pretrain": data.pretrain_pool,
    }
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not _groups_of(data, sets[a]) & _groups_of(data, sets[b]), (a, b)
    # exact, balanced sizes as asked, stratified per class
    assert data.split_counts("test").tolist() == [6, 6, 6]
    assert data.split_counts("val").tolist() == [3, 3, 3]
    probe = data.class_counts(data.probe_balanced)
    assert probe.min() == probe.max() > 0
    for name, idx in data.draw(0).subsets.items():  # subsets draw from the pretraining pool
        assert np.isin(idx, data.pretrain_pool).all(), name
    lines = stats_lines(data, 0)
    assert any(line.startswith("leakage: of 18 test images, 0 share") for line in lines)
    assert any("with the subsets of seed 0: balanced 0, natural 0" in line for line in lines)


def test_without_group_by_the_splits_are_untouched_and_the_leak_is_counted(frames, tmp_path):
    plain = list_data(_cfg(frames), tmp_path, EvaluationConfig())
    measured = list_data(
        _cfg(frames, {"pattern": TRACK, "keep_together": False}), tmp_path, EvaluationConfig()
    )
    assert plain.item_group is None
    assert (plain.split == measured.split).all()
    assert (plain.probe_balanced == measured.probe_balanced).all()
    for name, idx in plain.draw(0).subsets.items():
        assert (measured.draw(0).subsets[name] == idx).all()
    assert any(x.startswith("leakage: not measured (data.group_by") for x in stats_lines(plain, 0))
    # the leak, counted by hand: test images whose track also has a frame in the set
    g = measured.item_group
    test = measured.indices("test")

    def by_hand(idx, held=test):
        return sum(g[i] in set(g[idx]) for i in held)

    pool, probe, val = measured.indices("train"), measured.probe_balanced, measured.indices("val")
    leak = next(x for x in stats_lines(measured, 0) if x.startswith("leakage:"))
    subsets = measured.draw(0).subsets
    assert by_hand(pool) > 0
    assert leak == (
        f"leakage: of 18 test images, {by_hand(pool)} share a data.group_by group with the "
        f"train pool, {by_hand(probe)} with the probe set; with the subsets of seed 0: "
        f"balanced {by_hand(subsets['balanced'])}, natural {by_hand(subsets['natural'])}"
        # val images count too: model selection on a seen track leaks as well
        f"; of 9 val images, {by_hand(test, val)} with the test set, {by_hand(pool, val)} with "
        f"the pool, {by_hand(probe, val)} with the "
        f"probe set, subsets: balanced {by_hand(subsets['balanced'], val)}, natural "
        f"{by_hand(subsets['natural'], val)}"
    )


def test_a_group_with_two_labels_is_an_error_naming_it(tmp_path):
    root = _frames(tmp_path / "f", {"cod": [3] * 10, "eel": [3] * 10})
    (root / "cod" / "track_000_frame_00.png").rename(root / "eel" / "track_000_frame_00.png")
    with pytest.raises(UserError, match=r"group 'track_000' holds images of two classes"):
        list_data(_cfg(root, {"pattern": TRACK}), tmp_path, EvaluationConfig())


def test_an_unmatched_path_is_an_error(tmp_path):
    root = _frames(tmp_path / "f", {"cod": [3] * 10, "eel": [3] * 10})
    write_image(root / "eel" / "stray.png", 1, size=8)
    with pytest.raises(UserError, match=r"does not match 'eel/stray.png' \(1 of 61 images"):
        list_data(_cfg(root, {"pattern": TRACK}), tmp_path, EvaluationConfig())


def test_a_size_whole_groups_cannot_meet_names_the_class_and_what_can(tmp_path):
    # eel's tracks hold 4 frames each: 6 test images cannot be whole tracks; 4 can, in both
    root = _frames(tmp_path / "f", {"cod": [2] * 15, "eel": [4] * 8})
    with pytest.raises(UserError) as err:
        list_data(_cfg(root, {"pattern": TRACK}), tmp_path, EvaluationConfig())
    text = str(err.value)  # test 6 and val 3: both classes at fault, in one error
    assert "2 of 2 classes cannot give test_per_class=6 and val_per_class=3" in text
    assert "'eel': can give test_per_class=4 (its 8 groups hold 4, 4, 4" in text
    assert (
        "'cod': can give val_per_class=2 after test_per_class=6 (its 12 groups left hold 2" in text
    )
    # neither size alone fixes it, nor a cap; a pair does (checked by carving): eel's 4-frame
    # tracks give no val size below 4, so val 0 (said: nothing selected on val)
    assert "test_per_class: 4 with val_per_class: 0 (no validation split" in text
    assert "max_per_group: 1 with" not in text  # eel's 8 tracks cannot give 6 + 3 groups
    data = list_data(
        _cfg(root, {"pattern": TRACK}, test_per_class=4, val_per_class=0),
        tmp_path,
        EvaluationConfig(),
    )
    assert data.split_counts("test").tolist() == [4, 4]


def test_a_probe_size_whole_groups_cannot_meet_names_the_class(tmp_path):
    root = _frames(tmp_path / "f", {"cod": [3] * 10, "eel": [4] * 8})
    cfg = _cfg(root, {"pattern": TRACK}, test_per_class=12, val_per_class=0)
    with pytest.raises(
        UserError,
        match=r"probe_per_class: 5 images per class cannot be made of whole data.group_by "
        r"groups: class 'cod' can give at most 3 .*every class can give is 0",
    ):
        list_data(cfg, tmp_path, EvaluationConfig(probe_per_class=5))
    data = list_data(cfg, tmp_path, EvaluationConfig())  # default: the largest both can: 12
    assert data.class_counts(data.probe_balanced).tolist() == [12, 12]


def test_whole_group_subset_sums():
    assert [s for s in range(12) if reachable([3, 5], 11) >> s & 1] == [0, 3, 5, 8]
    parts = [np.array([0, 1, 2]), np.array([3, 4]), np.array([5, 6, 7, 8])]
    rng = np.random.default_rng(0)
    for k in (2, 3, 4, 5, 6, 7, 9):
        got = take_whole_groups(parts, k, rng)
        assert len(got) == k and all(
            np.isin(p, got).all() or not np.isin(p, got).any() for p in parts
        )
    assert len(take_whole_groups(parts, 8, rng)) == 0


# ----------------------------------------------------------------------------- friction
def test_the_default_probe_size_error_names_min_count(tmp_path):
    root = tmp_path / "f"
    for c, n in enumerate((40, 40, 10)):  # 'gar' keeps 1 image for its pool after val/test
        for i in range(n):
            write_image(root / ("cod", "eel", "gar")[c] / f"{i:02d}.png", 100 * c + i, size=8)
    cfg = DataConfig(
        source="folder", root=root, image_size=8, split={"val_per_class": 3, "test_per_class": 6}
    )
    with pytest.raises(
        UserError,
        match=r"probe_per_class: 1 leaves class 'gar' .* is not set: its default is half the "
        r"smallest class's pool; drop the smallest classes with data.classes.min_count",
    ):
        list_data(cfg, tmp_path, EvaluationConfig())
    with pytest.raises(UserError) as err:
        list_data(cfg, tmp_path, EvaluationConfig(probe_per_class=1))
    assert "min_count" not in str(err.value)  # the user set it: no word on defaults


def test_stats_keep_long_names_apart_and_say_which_seed(tmp_path):
    long_a, long_b = "Pseudanthias_squamipinnis_male", "Pseudanthias_squamipinnis_female"
    root = tmp_path / "f"
    for c, name in enumerate((long_a, long_b, "cod")):
        for i in range(20):
            write_image(root / name / f"{i:02d}.png", 100 * c + i, size=8)
    cfg = DataConfig(
        source="folder",
        root=root,
        image_size=8,
        split={"val_per_class": 2, "test_per_class": 4},
        imbalance={"profile": "exp", "ratio": 0.5, "sweep": [1.0]},
    )
    out = tmp_path / "out"
    data = prepare_data(cfg, out, EvaluationConfig(), seeds=[0, 1])
    lines = stats_lines(data, 1)
    assert sum(line.startswith(long_a + " ") for line in lines) == 1
    assert sum(line.startswith(long_b + " ") for line in lines) == 1
    assert any(line.startswith("subsets shown: study seed 1's draw") for line in lines)


def test_a_balanced_subset_prints_gini_zero_not_minus_zero(tmp_path):
    assert gini(np.full(30, 3)) < 0  # float rounding: 30 equal classes come out at -1e-16
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(30), 12)
    images = rng.integers(0, 255, (len(labels), 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "d.npz"
    np.savez(
        path,
        train_images=images,
        train_labels=labels,
        test_images=images[:60],
        test_labels=np.repeat(np.arange(30), 2),
    )
    cfg = DataConfig(
        source="npz",
        root=path,
        image_size=8,
        split={"val_per_class": 0},
        imbalance={"ratio": 0.5, "n": 90},
    )
    data = list_data(cfg, tmp_path, EvaluationConfig())
    lines = stats_lines(data, 0)
    assert not any("-0.000" in line for line in lines)
    assert any(line.startswith("balanced: n=") and "Gini 0.000" in line for line in lines)


def test_manifests_of_an_earlier_setting_are_removed(tmp_path):
    root = tmp_path / "f"
    for c in range(2):
        for i in range(20):
            write_image(root / f"k{c}" / f"{i:02d}.png", 100 * c + i, size=8)
    base = {"source": "folder", "root": root, "image_size": 8}
    split = {"val_per_class": 2, "test_per_class": 4}
    out = tmp_path / "out"
    first = DataConfig(**base, split=split, imbalance={"ratio": 0.25})
    prepare_data(first, out, EvaluationConfig(), seeds=[0, 1])
    manifests = out / "manifests"
    assert (manifests / "subset-exp-r0.25-s1.csv").is_file()
    cfg = DataConfig(**base, split=split, imbalance={"ratio": 0.5})
    prepare_data(cfg, out, EvaluationConfig(), seeds=[0])
    assert sorted(p.name for p in manifests.glob("*.csv")) == [
        "probe-balanced.csv",
        "split-test.csv",
        "split-train.csv",
        "split-val.csv",
        "subset-balanced-s0.csv",
        "subset-exp-r0.5-s0.csv",
    ]


# ----------------------------------------------------------------------------- duplicates
def _dup_folder(root: Path) -> Path:
    """cod and eel, 30 noise images each, plus: five copies of cod/00 under cod (exact), a
    copy of cod/01 filed under eel (exact, two labels) and cod/02 brightened by 6 levels
    under eel (a near-duplicate: its pixels differ, its difference hash does not)."""
    from PIL import Image

    for c, name in enumerate(("cod", "eel")):
        for i in range(30):
            write_image(root / name / f"{i:02d}.png", 100 * c + i, size=16)
    for k in range(5):
        (root / "cod" / f"copy{k}.png").write_bytes((root / "cod" / "00.png").read_bytes())
    (root / "eel" / "twin.png").write_bytes((root / "cod" / "01.png").read_bytes())
    px = np.asarray(Image.open(root / "cod" / "02.png")).astype(int)
    Image.fromarray(np.clip(px + 6, 0, 255).astype(np.uint8)).save(root / "eel" / "bright.png")
    return root


def _dup_cfg(root: Path, **duplicates) -> DataConfig:
    return DataConfig(
        source="folder",
        root=root,
        image_size=16,
        split={"val_per_class": 3, "test_per_class": 6},
        duplicates=duplicates,
    )


def test_exact_and_near_duplicates_are_found_with_their_splits_and_labels(tmp_path):
    root = _dup_folder(tmp_path / "f")
    data = prepare_data(_dup_cfg(root, near=True), tmp_path / "out", EvaluationConfig())
    rep = data.duplicates
    sets = {(r["kind"], tuple(r["items"])) for r in rep["sets"]}
    copies = ("cod/00.png", *(f"cod/copy{k}.png" for k in range(5)))
    assert sets == {
        ("exact", copies),
        ("exact", ("cod/01.png", "eel/twin.png")),
        ("near", ("cod/02.png", "eel/bright.png")),
    }
    place = {data.items[i]: s for i, s in enumerate(data.split)}
    for i in data.probe_balanced:
        place[data.items[i]] = "probe"
    crossing = sum(len({place[i] for i in items}) > 1 for _, items in sets)
    assert crossing >= 1 and rep["crossing_a_split"] == crossing
    assert rep["under_two_labels"] == 2
    assert (rep["exact_sets"], rep["exact_images"], rep["near_sets"]) == (2, 8, 1)
    lines = stats_lines(data, 0)
    assert any(
        line.startswith("  exact, under two classes (cod, eel), ")
        and line.endswith(": cod/01.png, eel/twin.png")
        for line in lines
    )
    # without near: the near pair is not reported; exact ones are, by default
    plain = prepare_data(_dup_cfg(root), tmp_path / "out2", EvaluationConfig())
    assert [r["kind"] for r in plain.duplicates["sets"]] == ["exact", "exact"]


def test_duplicates_dropped_or_kept_in_one_split(tmp_path):
    root = _dup_folder(tmp_path / "f")
    dropped = prepare_data(_dup_cfg(root, action="drop"), tmp_path / "a", EvaluationConfig())
    assert "cod/00.png" in dropped.items
    gone = {"cod/01.png", "eel/twin.png", *(f"cod/copy{k}.png" for k in range(5))}
    assert not gone & set(dropped.items) and len(dropped.dropped) == 7
    assert len(dropped.store.images) == len(dropped.items) == 67 - 7
    # the listing stage (run --plan) arranges as the run did, from the record beside the cache
    planned = list_data(_dup_cfg(root, action="drop"), tmp_path / "a", EvaluationConfig())
    assert planned.items == dropped.items and (planned.split == dropped.split).all()

    # group: a set filed under two classes (cod/01 = eel/twin) is reported, never linked (which
    # label is right is unknown, and linking it would merge two classes' groups)
    grouped = prepare_data(_dup_cfg(root, action="group"), tmp_path / "b", EvaluationConfig())
    assert grouped.duplicates["under_two_labels"] == 1
    assert (
        grouped.item_group[grouped.items.index("cod/01.png")]
        != (grouped.item_group[grouped.items.index("eel/twin.png")])
    )
    place = grouped.split.copy()
    place[grouped.probe_balanced] = "probe"
    copies = [
        grouped.items.index(i) for i in ("cod/00.png", *(f"cod/copy{k}.png" for k in range(5)))
    ]
    assert len(set(place[copies])) == 1
    crossing = [r for r in grouped.duplicates["sets"] if r["crosses_split"]]
    assert all(r["two_labels"] for r in crossing)


def test_near_duplicate_hash_candidates_match_brute_force():
    """The dHash band search proposes exactly the pairs within the threshold (candidates now:
    sets are no longer their connected components, see tests/test_duplicate_finder.py)."""
    from ssl_robustness.data.listing.near_duplicates import hash_pairs

    assert hash_pairs(np.array([0, 15, 2**40 - 1], np.uint64), 4).tolist() == [[0, 1]]
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, 40, dtype=np.uint64)
    flips = rng.integers(0, 64, (40, 3))
    noisy = base.copy()
    for i in range(40):
        for b in flips[i, : rng.integers(0, 4)]:
            noisy[i] ^= np.uint64(1 << int(b))
    hashes = np.concatenate([base, noisy])
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    for t in (0, 2, 5):
        want = np.argwhere(np.triu(dist <= t, k=1))
        assert hash_pairs(hashes, t).tolist() == want.tolist(), t


def test_a_long_decode_prints_flushed_progress_lines(tmp_path, monkeypatch, capsys):
    from ssl_robustness.data.store import images as images_mod

    monkeypatch.setattr(images_mod, "PROGRESS_EVERY_S", 0.0)  # every image counts as long
    root = tmp_path / "f"
    for c in range(2):
        for i in range(12):
            write_image(root / f"k{c}" / f"{i:02d}.png", 100 * c + i, size=8)
    cfg = DataConfig(
        source="folder",
        root=root,
        image_size=8,
        split={"val_per_class": 0, "test_per_class": 4},
        imbalance={"ratio": 0.5},
    )
    prepare_data(cfg, tmp_path / "out", EvaluationConfig())
    err = capsys.readouterr().err.splitlines()
    assert "decoding images: 1/24 (4%) in 0s" in err
    assert err[-1].startswith("decoding images: 24/24 in ")


# ----------------------------------------------------------------------------- data used
def test_the_tradeoff_table_and_the_classes_dropped_are_exact(tmp_path):
    """Pools 60/30/12/3 (official test split, no val). min_count 10 drops 'ray'. The default
    probe set takes 12 // 2 = 6 per class, leaving gar 6 for pretraining: the balanced arm, and
    so every matched arm, gets 3 x 6 = 18 of the 102-image pool. min_count 30 keeps cod and eel:
    probe 15 each, pretraining 45 and 15: balanced 2 x 15 = 30, natural (shares 60:30) 45,
    so n = 30."""
    from ssl_robustness.data.stats import data_tradeoff

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), [60, 30, 12, 3])
    images = rng.integers(0, 255, (len(labels), 8, 8, 3), dtype=np.uint8)
    path = tmp_path / "d.npz"
    np.savez(
        path,
        train_images=images,
        train_labels=labels,
        test_images=images[:8],
        test_labels=np.repeat(np.arange(4), 2),
        class_names=np.array(["cod", "eel", "gar", "ray"]),
    )
    cfg = DataConfig(
        source="npz",
        root=path,
        image_size=8,
        split={"val_per_class": 0},
        imbalance={"profile": "natural"},
        classes={"min_count": 10},
    )
    data = list_data(cfg, tmp_path, EvaluationConfig())
    assert data_tradeoff(data) == [
        {"choice": "as configured", "n": 18, "classes": 3, "share_of_pool": 18 / 102},
        {"choice": "data.classes.min_count: 30", "n": 30, "classes": 2, "share_of_pool": 30 / 102},
    ]
    lines = stats_lines(data, 0)
    assert (
        "classes: 3 of 4 listed kept; dropped: 'ray' (data.classes.min_count 10: 3 in its pool)"
        in lines
    )
    assert (
        "used per arm (of a 102-image train pool): balanced 18 (17.6%), natural 18 (17.6%); "
        "the smallest class, 'gar', has 6 images for pretraining"
    ) in lines
    assert "  data.classes.min_count: 30       30       2   29.4%" in lines


def test_the_report_states_groups_leakage_duplicates_and_the_data_used(frames, tmp_path):
    from ssl_robustness.data.stats import data_stats
    from ssl_robustness.report.sentences import data_lines

    cfg = _cfg(frames, {"pattern": TRACK})
    lines = data_lines(data_stats(prepare_data(cfg, tmp_path, EvaluationConfig()), [0]))
    assert "data.group_by groups: pool 19, val 3, test 6, probe set 6." in lines
    assert (
        "Leakage (seed 0): of 18 test images, 0 share a data.group_by group with the train pool, "
        "0 with the probe set; with the subsets of seed 0: balanced 0, natural 0; of 9 val "
        "images, 0 with the test set, 0 with the pool, 0 with the probe set, subsets: balanced 0, "
        "natural 0"
    ) in lines
    assert any(x.startswith("Duplicates (report): 0 exact and 0 near sets") for x in lines)
    assert any(x.startswith("used per arm (of a ") for x in lines)


def test_group_ids_from_a_list_column(tmp_path):
    """A CSV names each image's plant: the plants stay whole, and two labels in one plant is
    an error naming the plant."""
    root = tmp_path / "imgs"
    rows = ["path,label,plant"]
    k = 0
    for c, name in enumerate(("oak", "elm")):
        for plant in range(10):
            for shot in range(3):
                item = f"{name}/p{c}{plant}_{shot}.png"
                write_image(root / item, k, size=8)
                rows.append(f"{item},{name},plant{c}{plant}")
                k += 1
    listing = tmp_path / "train.csv"
    listing.write_text("\n".join(rows) + "\n")

    def cfg() -> DataConfig:
        return DataConfig(
            source="list",
            root=root,
            image_size=8,
            list={"train": listing, "path_column": "path", "label_column": "label"},
            split={"val_per_class": 3, "test_per_class": 6},
            imbalance={"ratio": 0.5},
            group_by={"column": "plant"},
        )

    data = list_data(cfg(), tmp_path, EvaluationConfig())
    assert data.item_group[0] == "plant00"
    val, test = data.indices("val"), data.indices("test")
    rest = np.setdiff1d(np.arange(len(data.items)), np.concatenate([val, test]))
    assert not _groups_of(data, test) & _groups_of(data, rest)
    assert not _groups_of(data, val) & _groups_of(data, rest)
    listing.write_text("\n".join([*rows[:-1], rows[-1].replace("plant19", "plant00")]) + "\n")
    with pytest.raises(UserError, match=r"group 'plant00' holds images of two classes"):
        list_data(cfg(), tmp_path, EvaluationConfig())


def test_a_slow_evaluation_says_so_when_it_ends(monkeypatch, capsys):
    from types import SimpleNamespace

    from ssl_robustness import study

    jobs = [(SimpleNamespace(label=name), Path("."), {}) for name in ("linear-balanced", "knn-k20")]
    monkeypatch.setattr(study, "SLOW_EVALUATION_S", float("inf"))
    assert list(study.announce_slow(iter(jobs), "simclr_natural_s0")) == jobs
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(study, "SLOW_EVALUATION_S", 0.0)
    assert list(study.announce_slow(iter(jobs), "simclr_natural_s0")) == jobs
    assert capsys.readouterr().err.splitlines() == [
        "    simclr_natural_s0: evaluation 1 (linear-balanced) in 0s",
        "    simclr_natural_s0: evaluation 2 (knn-k20) in 0s",
    ]

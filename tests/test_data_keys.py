"""What keys a study's data: cached features are reused only for the very images they were
extracted from, `data.classes` and `data.test_root` reach the data key, and a class filter
leaves the other classes' val/test images and pool order as they were."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_image
from ssl_robustness.atomic import CacheWarning
from ssl_robustness.cache_keys import data_key
from ssl_robustness.config import DataConfig
from ssl_robustness.data.prepare import list_data, prepare_data
from ssl_robustness.evaluation import features as feats_mod
from ssl_robustness.evaluation.features import cached_features


class _Pool(torch.nn.Module):
    feature_dim = 3

    def forward(self, x):
        return x.float().mean(dim=(2, 3))


def _features(cache: Path, images: np.ndarray, idx: np.ndarray, items: str | None):
    return cached_features(cache, "test", _Pool(), images, idx, torch.device("cpu"), items=items)


def _folder(root: Path, counts: dict[str, int], seed: int) -> None:
    for c, (name, n) in enumerate(counts.items()):
        for i in range(n):
            write_image(root / name / f"{i:02d}.png", seed + 100 * c + i, size=8)


# ----------------------------------------------------------------------------- 1. features
def test_features_of_the_same_indices_but_other_images_are_rebuilt(tmp_path, monkeypatch):
    images = np.random.default_rng(0).integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
    idx = np.array([1, 4])
    calls = []
    real = feats_mod.extract_features
    monkeypatch.setattr(
        feats_mod, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    first = _features(tmp_path, images, idx, "clean")
    assert _features(tmp_path, images, idx, "clean").tolist() == first.tolist()
    assert calls == [1]
    other = images[::-1].copy()
    with pytest.warns(CacheWarning, match=r"test\.npy: cached features extracted from other"):
        again = _features(tmp_path, other, idx, "corrupted")
    assert calls == [1, 1]
    assert again.tolist() == real(_Pool(), other, idx, torch.device("cpu")).tolist()
    assert again.tolist() != first.tolist()


def test_features_recorded_without_their_items_are_rebuilt(tmp_path):
    images = np.random.default_rng(1).integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)
    idx = np.arange(4)
    _features(tmp_path, images, idx, None)  # a cache written before items were recorded
    with pytest.warns(CacheWarning, match=r"extracted from images it did not record"):
        _features(tmp_path, images, idx, "key")
    assert feats_mod.read_json_or_none(tmp_path / "test.meta.json")["items"] == "key"


def test_another_test_root_with_equal_class_sizes_gets_its_own_features(tmp_path):
    counts = {"ant": 5, "bee": 4}
    _folder(tmp_path / "train", {"ant": 30, "bee": 30}, seed=0)
    _folder(tmp_path / "test_clean", counts, seed=1000)
    _folder(tmp_path / "test_corrupted", counts, seed=2000)
    arms = {}
    for name in ("test_clean", "test_corrupted"):
        cfg = DataConfig(
            source="folder",
            root=tmp_path / "train",
            test_root=tmp_path / name,
            image_size=8,
            split={"val_per_class": 1},
        )
        arms[name] = prepare_data(cfg, tmp_path / "out" / "data")
    clean, corrupted = arms["test_clean"], arms["test_corrupted"]
    idx = clean.indices("test")
    assert idx.tolist() == corrupted.indices("test").tolist()  # the indices cannot tell
    assert data_key(clean.cfg) != data_key(corrupted.cfg)
    assert clean.items_key(idx) != corrupted.items_key(idx)
    feats = tmp_path / "out" / "features"
    _features(feats, clean.store.images, idx, clean.items_key(idx))
    with pytest.warns(CacheWarning, match=r"other images"):
        got = _features(feats, corrupted.store.images, idx, corrupted.items_key(idx))
    want = feats_mod.extract_features(_Pool(), corrupted.store.images, idx, torch.device("cpu"))
    assert got.tolist() == want.tolist()


# ----------------------------------------------------------------------------- 1. data key
def test_classes_and_test_root_reach_the_data_key_only_when_set(tmp_path):
    base = DataConfig()
    assert data_key(base) == "78e054be97"  # the key before classes/test_root reached it
    assert data_key(DataConfig(classes={"include": [], "exclude": []})) == "78e054be97"
    keys = {
        data_key(DataConfig(classes={"include": ["0", "3"]})),
        data_key(DataConfig(classes={"include": ["0", "4"]})),
        data_key(DataConfig(classes={"exclude": ["0"]})),
        data_key(DataConfig(classes={"min_count": 5})),
        "78e054be97",
    }
    assert len(keys) == 5
    (tmp_path / "a" / "x").mkdir(parents=True)
    (tmp_path / "b" / "x").mkdir(parents=True)
    folder = DataConfig(source="folder", root=tmp_path)
    with_a = folder.model_copy(update={"test_root": tmp_path / "a"})
    with_b = folder.model_copy(update={"test_root": tmp_path / "b"})
    assert len({data_key(folder), data_key(with_a), data_key(with_b)}) == 3


# ----------------------------------------------------------------------------- 2. class filter
def _by_class(data, idx: np.ndarray) -> dict[str, list[str]]:
    return {
        name: [data.items[i] for i in idx if data.labels[i] == c]
        for c, name in enumerate(data.class_names)
    }


@pytest.mark.parametrize("resample", [False, True])
def test_excluding_a_class_keeps_the_other_classes_images(tmp_path, resample):
    imbalance = {"resample_per_seed": resample}
    full = list_data(DataConfig(imbalance=imbalance), tmp_path / "a")
    cut = list_data(DataConfig(imbalance=imbalance, classes={"exclude": ["0"]}), tmp_path / "b")
    assert cut.class_names == [str(c) for c in range(1, 10)]
    for split in ("val", "test"):
        kept = {k: v for k, v in _by_class(full, full.indices(split)).items() if k != "0"}
        assert _by_class(cut, cut.indices(split)) == kept
    order = {
        n: [full.items[i] for i in o]
        for n, o in zip(full.class_names, full.pool_order, strict=True)
    }
    assert [[cut.items[i] for i in o] for o in cut.pool_order] == [
        order[n] for n in cut.class_names
    ]
    for seed in (0, 1):  # each class's subset items: prefixes of the same (per-seed) order
        for n in (full.balanced_name, full.imbalanced_name):
            a = _by_class(full, full.draw(seed).subsets[n])
            b = _by_class(cut, cut.draw(seed).subsets[n])
            for name in cut.class_names:
                shorter, longer = sorted((set(a[name]), set(b[name])), key=len)
                assert shorter <= longer


# ----------------------------------------------------------------------------- 3. --plan
def test_listing_drops_the_bad_images_an_existing_cache_records(tmp_path):
    root = tmp_path / "imgs"
    _folder(root, {"ant": 26, "bee": 26, "cat": 26}, seed=0)
    (root / "ant" / "03.png").write_bytes(b"junk")
    cfg = DataConfig(
        source="folder",
        root=root,
        image_size=8,
        skip_bad_images=True,
        split={"val_per_class": 2, "test_per_class": 2},
    )
    out = tmp_path / "out"
    before = list_data(cfg, out)  # no cache yet: nothing known to be bad
    assert "ant/03.png" in before.items and before.bad_images == []
    prepared = prepare_data(cfg, out)
    listed = list_data(cfg, out)
    assert "ant/03.png" not in listed.items and len(listed.bad_images) == 1
    assert listed.items == prepared.items
    for split in ("train", "val", "test"):
        assert listed.indices(split).tolist() == prepared.indices(split).tolist()
    assert listed.probe_balanced.tolist() == prepared.probe_balanced.tolist()
    assert [p.counts.tolist() for p in listed.plans] == [p.counts.tolist() for p in prepared.plans]
    assert prepare_data(cfg, out).items == prepared.items  # the cache's record, reused
    plain = list_data(cfg.model_copy(update={"skip_bad_images": False}), out)
    assert "ant/03.png" in plain.items  # another key: that cache is not this listing's

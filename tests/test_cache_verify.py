"""Caches are verified, not trusted: stale inputs, truncation or corruption mean a rebuild."""

import json
import os
import stat
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_image
from ssl_robustness.atomic import (
    CacheWarning,
    atomic_path,
    load_torch_or_none,
    read_json_or_none,
    remove_orphan_temps,
    save_torch,
    write_json,
)
from ssl_robustness.data.listing.labelled import LabelledSet
from ssl_robustness.data.sources.folder import load_folder
from ssl_robustness.data.store.images import build_image_cache
from ssl_robustness.errors import UserError
from ssl_robustness.evaluation import features as feats_mod
from ssl_robustness.evaluation.features import cached_features


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "data"
    for i in range(6):
        write_image(root / "a" / f"{i}.png", i, size=8)
    return root


def _build(lset, path, **kw):
    return build_image_cache(lset, np.arange(len(lset)), 8, path, **kw)[0]


def _rewrite(path, offset, data):
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def test_cache_hit_is_silent_and_not_rebuilt(folder, tmp_path):
    lset = load_folder(folder)
    cache = tmp_path / "c.npy"
    first = np.array(_build(lset, cache))
    built = cache.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = _build(lset, cache)
    assert np.array_equal(again, first) and cache.stat().st_mtime_ns == built
    meta = json.loads(cache.with_suffix(".meta.json").read_text())
    assert meta["bytes"] == cache.stat().st_size and len(meta["sha256"]) == 64


def test_cache_zeroed_in_place_is_rebuilt(folder, tmp_path):
    lset = load_folder(folder)
    cache = tmp_path / "c.npy"
    first = np.array(_build(lset, cache))
    size = cache.stat().st_size
    _rewrite(cache, 128, bytes(size - 128))  # header kept, pixels zeroed
    with pytest.warns(CacheWarning, match=r"c\.npy: image cache content does not match"):
        again = _build(lset, cache)
    assert np.array_equal(again, first) and first.any()


def test_truncated_cache_is_rebuilt(folder, tmp_path):
    lset = load_folder(folder)
    cache = tmp_path / "c.npy"
    first = np.array(_build(lset, cache))
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2])
    with pytest.warns(CacheWarning, match=r"c\.npy: image cache truncated"):
        assert np.array_equal(_build(lset, cache), first)


def test_image_replaced_under_the_same_name_is_decoded_again(folder, tmp_path):
    lset = load_folder(folder)
    cache = tmp_path / "c.npy"
    _build(lset, cache)
    target = folder / lset.items[2]
    Image.new("RGB", (8, 8), (7, 8, 9)).save(target)
    later = time.time_ns() + 5_000_000_000
    os.utime(target, ns=(later, later))
    with pytest.warns(CacheWarning, match=r"c\.npy: image cache built from different inputs"):
        again = _build(lset, cache)
    assert (again[2] == [7, 8, 9]).all()


def test_in_memory_pixels_changed_are_rebuilt(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (5, 8, 8, 3), dtype=np.uint8)
    lset = LabelledSet([str(i) for i in range(5)], np.zeros(5, int), ["a"], pixels=pixels)
    cache = tmp_path / "c.npy"
    assert np.array_equal(_build(lset, cache), pixels)
    pixels2 = pixels.copy()
    pixels2[3] = 1
    lset2 = LabelledSet(lset.items, lset.labels, ["a"], pixels=pixels2)
    with pytest.warns(CacheWarning, match="different inputs"):
        assert np.array_equal(_build(lset2, cache), pixels2)


def test_cache_without_record_or_with_a_corrupt_record_is_rebuilt(folder, tmp_path):
    lset = load_folder(folder)
    cache = tmp_path / "c.npy"
    first = np.array(_build(lset, cache))
    meta = cache.with_suffix(".meta.json")
    meta.write_text('{"version": 2, "inp')
    with pytest.warns(CacheWarning) as record:
        assert np.array_equal(_build(lset, cache), first)
    text = " | ".join(str(w.message) for w in record)
    assert "c.meta.json: truncated or corrupt JSON" in text and "c.npy: image cache without" in text
    meta.unlink()
    with pytest.warns(CacheWarning, match=r"c\.npy: image cache without a valid checksum"):
        _build(lset, cache)


def test_skipped_bad_images_in_a_cache_still_fail_without_skip(folder, tmp_path):
    (folder / "a" / "4.png").write_bytes(b"junk")
    lset = load_folder(folder)
    cache = tmp_path / "c.npy"
    _, bad = build_image_cache(lset, np.arange(6), 8, cache, skip_bad=True)
    assert [b.index for b in bad] == [4]
    with pytest.raises(UserError, match=r"(?s)1 unreadable image.*4\.png"):
        build_image_cache(lset, np.arange(6), 8, cache, skip_bad=False)


class _Pool(torch.nn.Module):
    feature_dim = 3

    def forward(self, x):
        return x.float().mean(dim=(2, 3))


def _features(tmp_path, images, idx):
    return cached_features(tmp_path, "train", _Pool(), images, idx, torch.device("cpu"))


@pytest.mark.parametrize("damage", ["truncate", "zero", "index"])
def test_damaged_features_file_is_rebuilt(tmp_path, damage, monkeypatch):
    images = np.random.default_rng(0).integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
    idx = np.array([0, 2, 5])
    calls = []
    real = feats_mod.extract_features
    monkeypatch.setattr(
        feats_mod, "extract_features", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    first = _features(tmp_path, images, idx)
    assert _features(tmp_path, images, idx).tolist() == first.tolist() and calls == [1]
    path = tmp_path / ("train.index.npy" if damage == "index" else "train.npy")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) - 8])
    else:
        _rewrite(path, 128, bytes(len(data) - 128))
    with pytest.warns(CacheWarning, match=rf"{path.name}: .*rebuilding it"):
        again = _features(tmp_path, images, idx)
    assert again.tolist() == first.tolist() and calls == [1, 1]


def test_umask_gives_atomic_files_the_mode_open_would(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        save_torch(tmp_path / "b.pt", {"w": torch.zeros(1)})
        with atomic_path(tmp_path / "c.npy") as tmp, tmp.open("wb") as fh:
            np.save(fh, np.zeros(2))
        os.umask(0o027)
        write_json(tmp_path / "d.json", {})
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"a.json": 0o644, "b.pt": 0o644, "c.npy": 0o644, "d.json": 0o640}


def test_remove_orphan_temps_removes_only_old_writer_temps(tmp_path):
    def temp(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
        return path

    # the names the writers make: .<final name>.<8 chars>.tmp
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "probe.json") as made:
        name = made.name
        raise RuntimeError
    assert name.startswith(".probe.json.") and name.endswith(".tmp") and len(name) == 24
    old = [
        temp(tmp_path / ".x.json.ab_3k9zq.tmp"),
        temp(tmp_path / "r" / "s" / ".c.pt.00000000.tmp"),
    ]
    young = temp(tmp_path / ".y.json.abcdefgh.tmp")
    keep = [
        temp(tmp_path / "notes.tmp"),
        temp(tmp_path / ".x.json.short.tmp"),
        temp(tmp_path / "a.json"),
    ]
    past = time.time() - 7200
    for p in [*old, *keep]:
        os.utime(p, (past, past))
    assert remove_orphan_temps(tmp_path) == sorted(old)
    assert all(p.exists() for p in [young, *keep]) and not any(p.exists() for p in old)
    assert remove_orphan_temps(tmp_path, min_age_s=0) == [young]
    assert remove_orphan_temps(tmp_path / "absent") == []


def test_read_json_or_none(tmp_path):
    path = tmp_path / "done.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_json_or_none(path) is None  # not built yet: no warning
        write_json(path, {"a": [1, 2]})
        assert read_json_or_none(path) == {"a": [1, 2]}
    path.write_text('{"a": [1,')
    with pytest.warns(CacheWarning, match=r"done\.json: truncated or corrupt JSON"):
        assert read_json_or_none(path) is None
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.warns(CacheWarning, match=r"done\.json"):
        assert read_json_or_none(path) is None
    with pytest.warns(CacheWarning, match=r"gone\.json: missing"):
        assert read_json_or_none(tmp_path / "gone.json", warn_missing=True) is None


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_load_torch_or_none(tmp_path):
    path = tmp_path / "backbone.pt"
    assert load_torch_or_none(path) is None
    save_torch(path, {"w": torch.arange(50)})
    assert torch.equal(load_torch_or_none(path)["w"], torch.arange(50))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(CacheWarning, match=r"backbone\.pt: truncated or corrupt"):
        assert load_torch_or_none(path) is None
    path.write_bytes(b"")
    with pytest.warns(CacheWarning, match=r"backbone\.pt: truncated or corrupt \(EOFError"):
        assert load_torch_or_none(path) is None
    torch.save({"w": torch.zeros(1), "x": _Evil()}, path)
    with pytest.raises(
        UserError, match=r"backbone\.pt: carries pickled code; refused: weights_only"
    ):
        load_torch_or_none(path)
    with pytest.raises(ValueError, match="weights_only=True only"):
        load_torch_or_none(path, weights_only=False)

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import write_image
from ssl_robustness.config import DataConfig, ListFilesConfig
from ssl_robustness.data.sources.awa2 import load_awa2
from ssl_robustness.data.sources.cifar import load_cifar
from ssl_robustness.data.sources.digits import load_digits
from ssl_robustness.data.sources.folder import load_folder
from ssl_robustness.data.sources.list_files import load_list
from ssl_robustness.data.store.images import build_image_cache, decode_image
from ssl_robustness.data.store.manifest import read_manifest, write_manifest
from ssl_robustness.errors import UserError


def test_digits_is_the_real_bundled_set():
    lset = load_digits()
    assert len(lset) == 1797 and lset.num_classes == 10
    assert lset.pixels.shape == (1797, 8, 8, 3) and lset.pixels.dtype == np.uint8
    assert lset.pixels.max() == 255 and lset.official_split is None


def test_folder_source_reads_classes_and_converts_modes(image_folder):
    lset = load_folder(image_folder)
    assert lset.class_names == ["ant", "bee", "cat"]
    assert lset.class_counts().tolist() == [14, 10, 8]
    img = decode_image(image_folder / lset.items[2], 8)  # an RGBA png
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8
    grey = decode_image(image_folder / lset.items[3], 8)  # an L bmp
    assert (grey[..., 0] == grey[..., 1]).all()


def test_folder_with_split_subfolders(tmp_path):
    for split, n in (("train", 4), ("test", 2)):
        for c in ("x", "y"):
            for i in range(n):
                write_image(tmp_path / split / c / f"{i}.png", i)
    lset = load_folder(tmp_path)
    assert sorted(set(lset.official_split)) == ["test", "train"]
    assert (lset.official_split == "test").sum() == 4


def test_folder_errors_name_the_folder(tmp_path, image_folder):
    with pytest.raises(UserError, match="not a folder"):
        load_folder(tmp_path / "missing")
    (image_folder / "dog").mkdir()
    with pytest.raises(UserError, match=r"dog: empty class folder"):
        load_folder(image_folder)
    with pytest.raises(UserError, match="no class folders"):
        (tmp_path / "empty").mkdir()
        load_folder(tmp_path / "empty")


def test_missing_root_is_reported_before_any_work(tmp_path):
    with pytest.raises(Exception, match="path does not exist"):
        DataConfig(source="folder", root=tmp_path / "nope")


def _list_root(tmp_path: Path) -> Path:
    for i, c in enumerate(["a", "b"] * 3):
        write_image(tmp_path / "img" / c / f"{i}.jpg", i)
    return tmp_path


def test_list_files_imagenet_lt_style(tmp_path):
    root = _list_root(tmp_path)
    (root / "train.txt").write_text("img/a/0.jpg 0\nimg/b/1.jpg 1\nimg/a/2.jpg 0\nimg/b/3.jpg 1\n")
    (root / "test.txt").write_text("img/a/4.jpg 0\nimg/b/5.jpg 1\n")
    lset = load_list(root, ListFilesConfig(train=root / "train.txt", test=root / "test.txt"))
    assert lset.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert lset.official_split.tolist() == ["train"] * 4 + ["test"] * 2
    assert lset.class_names == ["0", "1"]


def test_csv_with_named_columns_and_class_names(tmp_path):
    root = _list_root(tmp_path)
    (root / "classes.txt").write_text("a\nb\n")
    (root / "train.csv").write_text("file,species\nimg/a/0.jpg,a\nimg/b/1.jpg,b\n")
    cfg = ListFilesConfig(
        train=root / "train.csv",
        path_column="file",
        label_column="species",
        classes=root / "classes.txt",
    )
    lset = load_list(root, cfg)
    assert lset.labels.tolist() == [0, 1] and lset.class_names == ["a", "b"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("img/a/0.jpg 0\nimg/b/1.jpg 5\n", r"train\.txt:2: label 5 out of range \[0, 2\)"),
        (
            "img/a/0.jpg 0\nimg/a/0.jpg 1\n",
            r"train\.txt:2: duplicate path 'img/a/0.jpg' "
            r"\(first listed at .*train\.txt:1\)",
        ),
        ("img/a/0.jpg\n", r"train\.txt:1: expected at least 2 fields"),
    ],
)
def test_list_file_errors_name_file_and_line(tmp_path, content, message):
    root = _list_root(tmp_path)
    (root / "classes.txt").write_text("a\nb\n")
    (root / "train.txt").write_text(content)
    with pytest.raises(UserError, match=message):
        load_list(root, ListFilesConfig(train=root / "train.txt", classes=root / "classes.txt"))


def test_unknown_class_in_csv(tmp_path):
    root = _list_root(tmp_path)
    (root / "classes.txt").write_text("a\nb\n")
    (root / "train.tsv").write_text("img/a/0.jpg\ta\nimg/b/1.jpg\tzebra\n")
    with pytest.raises(UserError, match=r"train\.tsv:2: unknown class 'zebra'"):
        load_list(root, ListFilesConfig(train=root / "train.tsv", classes=root / "classes.txt"))


def _write_cifar10(root: Path, per_batch: int = 4) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    first = None
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 255, (per_batch, 3072), dtype=np.uint8)
        first = data if first is None else first
        with (folder / name).open("wb") as fh:
            pickle.dump({"data": data, "labels": list(rng.integers(0, 10, per_batch))}, fh)
    with (folder / "batches.meta").open("wb") as fh:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, fh)
    return first


def test_cifar10_in_torchvision_on_disk_format(tmp_path):
    first = _write_cifar10(tmp_path)
    lset = load_cifar(tmp_path, 10)
    assert len(lset) == 24 and lset.pixels.shape == (24, 32, 32, 3)
    assert (lset.official_split == "test").sum() == 4
    # channel-major rows become HWC images
    assert (lset.pixels[0, :, :, 0].reshape(-1) == first[0, :1024]).all()


def test_cifar_pickle_that_runs_code_is_refused(tmp_path):
    _write_cifar10(tmp_path)
    with (tmp_path / "cifar-10-batches-py" / "data_batch_1").open("wb") as fh:
        pickle.dump({"data": os.getcwd}, fh)
    with pytest.raises(UserError, match="refusing to load"):
        load_cifar(tmp_path, 10)
    with pytest.raises(UserError, match="CIFAR file missing|expected"):
        load_cifar(tmp_path / "none", 10)


def test_awa2_layout(tmp_path):
    base = tmp_path / "Animals_with_Attributes2"
    (base).mkdir()
    (base / "classes.txt").write_text("1\tantelope\n2\tgrizzly+bear\n")
    for c in ("antelope", "grizzly+bear"):
        for i in range(3):
            write_image(base / "JPEGImages" / c / f"{c}_{i}.jpg", i)
    lset = load_awa2(tmp_path)
    assert lset.class_names == ["antelope", "grizzly+bear"]
    assert lset.items[0].startswith("JPEGImages/antelope/") and lset.root == base


def test_corrupt_image_fails_with_its_path_or_is_skipped(image_folder, tmp_path):
    bad = image_folder / "bee" / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    lset = load_folder(image_folder)
    idx = np.arange(len(lset))
    with pytest.raises(UserError, match=r"(?s)1 unreadable image\(s\).*broken\.jpg"):
        build_image_cache(lset, idx, 8, tmp_path / "c1.npy")
    assert not (tmp_path / "c1.npy").exists()  # no half-written cache
    arr, bad_list = build_image_cache(lset, idx, 8, tmp_path / "c2.npy", skip_bad=True)
    assert arr.shape == (len(lset), 8, 8, 3) and len(bad_list) == 1
    assert "broken.jpg" in bad_list[0].message


def test_manifest_round_trip(tmp_path):
    path = tmp_path / "m.csv"
    write_manifest(path, ["a/1.png", "b/2.png"], np.array([0, 1]), ["a", "b"], "train", "exp-r0.1")
    rows = read_manifest(path)
    assert rows == [
        {"item": "a/1.png", "label": 0, "class_name": "a", "split": "train", "subset": "exp-r0.1"},
        {"item": "b/2.png", "label": 1, "class_name": "b", "split": "train", "subset": "exp-r0.1"},
    ]


def test_npz_arrays_source(tmp_path):
    from ssl_robustness.data.sources.npz import load_npz

    rng = np.random.default_rng(0)
    path = tmp_path / "subset.npz"
    np.savez(
        path,
        train_images=rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8),
        train_labels=np.array([0, 1, 2, 0, 1, 2]),
        test_images=rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8),
        test_labels=np.array([0, 1, 2]),
        class_names=np.array(["a", "b", "c"]),
    )
    lset = load_npz(path)
    assert len(lset) == 9 and lset.class_names == ["a", "b", "c"]
    assert (lset.official_split == "test").sum() == 3
    np.savez(tmp_path / "bad.npz", train_images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(UserError, match=r"bad\.npz: missing arrays \['train_labels'"):
        load_npz(tmp_path / "bad.npz")


def test_every_configured_source_has_a_registered_reader_and_vice_versa():
    """The names `data.source` accepts (config's SourceName) are the registered readers'."""
    from typing import get_args

    from ssl_robustness.config.data import SourceName
    from ssl_robustness.data.sources import registered_sources

    assert sorted(get_args(SourceName)) == registered_sources()


def test_a_source_name_another_reader_holds_is_refused():
    from ssl_robustness.data.sources.registry import _REGISTRY, register_source

    held = _REGISTRY["digits"]
    with pytest.raises(TypeError, match="data source 'digits' is taken by"):
        register_source("digits")(lambda cfg: None)
    assert _REGISTRY["digits"] is held
    register_source("digits")(held.read)  # the same reader again (a reload) is filed again
    assert _REGISTRY["digits"].read is held.read

"""Source cifar10_subset: a seeded per-class subset of torchvision's CIFAR-10, made once from
the python batches, cached with the checksum of its content, checked at every use. The test
writes batches in torchvision's on-disk format (no network); the download path is exercised
with a stand-in for torchvision's CIFAR10 that writes them."""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from ssl_robustness.config import validate_config
from ssl_robustness.data.sources import cifar_subset as CS
from ssl_robustness.data.sources import load_source
from ssl_robustness.data.sources.cifar_subset import load_cifar10_subset
from ssl_robustness.errors import UserError

TRAIN, TEST = 6, 3  # images per class kept here (the documented subset: 1,000 and 200)


def write_cifar10(root: Path, train_per_class: int = 9, test_per_class: int = 5) -> None:
    """torchvision's cifar-10-batches-py: 5 train batches, a test batch, batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train = rng.permutation(np.repeat(np.arange(10), train_per_class))
    test = rng.permutation(np.repeat(np.arange(10), test_per_class))
    batches = {f"data_batch_{i + 1}": part for i, part in enumerate(np.array_split(train, 5))}
    batches["test_batch"] = test
    for name, labels in batches.items():
        data = rng.integers(0, 255, (len(labels), 3072), dtype=np.uint8)
        with (folder / name).open("wb") as fh:
            pickle.dump({"data": data, "labels": [int(x) for x in labels]}, fh)
    with (folder / "batches.meta").open("wb") as fh:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, fh)


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setattr(CS, "TRAIN_PER_CLASS", TRAIN)
    monkeypatch.setattr(CS, "TEST_PER_CLASS", TEST)


def test_the_documented_subset_is_1000_train_and_200_test_per_class_seed_0():
    assert (CS.TRAIN_PER_CLASS, CS.TEST_PER_CLASS, CS.SEED) == (1000, 200, 0)


def test_subset_draws_per_class_from_torchvisions_images_and_records_its_checksum(tmp_path, small):
    from ssl_robustness.data.sources.cifar import load_cifar

    write_cifar10(tmp_path)
    full = load_cifar(tmp_path, 10)
    lset = load_cifar10_subset(tmp_path, download=False)
    split = lset.official_split
    assert np.bincount(lset.labels[split == "train"]).tolist() == [TRAIN] * 10
    assert np.bincount(lset.labels[split == "test"]).tolist() == [TEST] * 10
    assert lset.class_names == [f"class{i}" for i in range(10)]
    with np.load(tmp_path / CS.FILE) as npz:
        for s in ("train", "test"):
            index = npz[f"{s}_index"]
            assert (np.diff(index) > 0).all()  # kept in torchvision's file order
            where = np.flatnonzero(full.official_split == s)
            assert (npz[f"{s}_images"] == full.pixels[where][index]).all()
            assert (npz[f"{s}_labels"] == full.labels[where][index]).all()
    record = json.loads((tmp_path / CS.RECORD).read_text())
    assert record["seed"] == 0 and record["train_per_class"] == TRAIN
    # the first images of each class in default_rng(0)'s permutation of the train split
    rng = np.random.default_rng(0)
    train_labels = full.labels[full.official_split == "train"]
    order = rng.permutation(len(train_labels))
    want = np.sort(np.concatenate([order[train_labels[order] == c][:TRAIN] for c in range(10)]))
    with np.load(tmp_path / CS.FILE) as npz:
        assert npz["train_index"].tolist() == want.tolist()


def test_the_same_batches_give_the_same_subset_anywhere_and_it_is_made_once(tmp_path, small):
    a, b = tmp_path / "a", tmp_path / "b"
    write_cifar10(a)
    write_cifar10(b)
    load_cifar10_subset(a, download=False)
    load_cifar10_subset(b, download=False)
    sums = [json.loads((r / CS.RECORD).read_text())["content_sha256"] for r in (a, b)]
    assert sums[0] == sums[1]
    for f in (a / "cifar-10-batches-py").iterdir():  # cached: the batches are not read again
        f.unlink()
    assert len(load_cifar10_subset(a, download=False)) == 10 * (TRAIN + TEST)


def test_a_changed_subset_file_is_refused(tmp_path, small):
    write_cifar10(tmp_path)
    load_cifar10_subset(tmp_path, download=False)
    with np.load(tmp_path / CS.FILE) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["train_images"][0, 0, 0, 0] ^= 1
    np.savez(tmp_path / CS.FILE, **arrays)
    with pytest.raises(UserError, match=r"is not the subset recorded in .*delete both files"):
        load_cifar10_subset(tmp_path, download=False)
    (tmp_path / CS.RECORD).unlink()
    with pytest.raises(UserError, match=r"no recorded checksum"):
        load_cifar10_subset(tmp_path, download=False)


def test_download_goes_through_torchvision(tmp_path, small, monkeypatch):
    import torchvision

    calls = []

    class FakeCIFAR10:  # torchvision's downloader, minus the network
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_cifar10(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    root = tmp_path / "fresh" / "cifar10"
    with pytest.raises(UserError, match=r"data.download: true"):
        load_cifar10_subset(root, download=False)
    cfg = validate_config(
        {"data": {"source": "cifar10_subset", "root": str(root), "download": True}}
    )
    lset = load_source(cfg.data)
    assert calls == [(str(root), True, True)]
    assert len(lset) == 10 * (TRAIN + TEST) and (root / CS.RECORD).is_file()

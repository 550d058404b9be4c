"""Source `cifar10_subset`: a fixed, seeded per-class subset of torchvision's CIFAR-10 that a
CPU study can afford, made from a fresh clone in one step and cached once.

The subset: 1,000 training and 200 test images of each of the 10 classes. A seeded
permutation (numpy `default_rng(0)`) of torchvision's 50,000 training images is walked in
order and the first 1,000 images of each class are kept; likewise the first 200 of each class
from a permutation (the same generator, drawn next) of the 10,000 test images. The kept images
stay in torchvision's file order. torchvision checks the archive's published MD5 when it
downloads, so every machine starts from the same CIFAR-10 and draws the same subset.

Cached under `root` as `cifar10_subset.npz` (the layout of source `npz`, plus the kept images'
indices in torchvision's order) and `cifar10_subset.json`: how it was drawn and the SHA-256 of
its pixels and labels, checked at every use. The CIFAR-10 batches themselves
(`root/cifar-10-batches-py/`, 178 MB) are needed only to make the subset once."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...atomic import read_json_or_none, write_json, write_with
from ...config import DataConfig
from ...errors import UserError
from ..listing.labelled import LabelledSet
from .cifar import load_cifar
from .common import source_root
from .npz import NPZ_FAULTS, load_npz, open_npz
from .registry import register_source

TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
SEED = 0
FILE = "cifar10_subset.npz"
RECORD = "cifar10_subset.json"
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


def draw(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the first `per_class` images of each class in a seeded permutation, sorted
    (file order). A class with fewer images is an error, not a smaller class."""
    order = rng.permutation(len(labels))
    kept = []
    for c in range(int(labels.max()) + 1):
        of_class = order[labels[order] == c][:per_class]
        if len(of_class) < per_class:
            raise UserError(
                f"CIFAR-10 class {c} has {len(of_class)} images, fewer than {per_class}"
            )
        kept.append(of_class)
    return np.sort(np.concatenate(kept))


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of the subset's pixels and labels (not of the .npz file, whose zip headers carry
    write times): the same on every machine that draws the same subset."""
    h = hashlib.sha256()
    for name in ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def make_subset(full: LabelledSet) -> dict[str, np.ndarray]:
    """The subset's arrays from torchvision's CIFAR-10 as `load_cifar` reads it."""
    assert full.pixels is not None and full.official_split is not None
    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        where = np.flatnonzero(full.official_split == split)
        kept = where[draw(full.labels[where], per_class, rng)]
        out[f"{split}_images"] = full.pixels[kept]
        out[f"{split}_labels"] = full.labels[kept]
        out[f"{split}_index"] = kept - where[0]  # position in torchvision's split
    out["class_names"] = np.array(full.class_names)
    return out


def cached(
    root: Path,
    read_full: Callable[[], LabelledSet],
    read_npz: Callable[[Path], LabelledSet],
) -> LabelledSet:
    """The cached subset under `root` (read by `read_npz`), made first from `read_full()`
    (torchvision's CIFAR-10, downloaded if asked) when it is not there; its recorded checksum
    is checked every time."""
    path, record = root / FILE, root / RECORD
    if not path.is_file():
        root.mkdir(parents=True, exist_ok=True)
        arrays = make_subset(read_full())
        write_with(path, lambda tmp: _savez(tmp, arrays))
        write_json(
            record,
            {
                "source": "torchvision CIFAR-10 (cifar-10-python.tar.gz, MD5 checked by "
                "torchvision at download)",
                "train_per_class": TRAIN_PER_CLASS,
                "test_per_class": TEST_PER_CLASS,
                "seed": SEED,
                "rule": "the first images of each class in numpy default_rng(seed).permutation "
                "of the train split, then of the test split; kept in file order",
                "content_sha256": content_sha256(arrays),
            },
        )
        print(f"cifar10_subset: wrote {path}; its content's sha256 is in {record}", file=sys.stderr)
    _verify(path, record)
    return read_npz(path)


def _savez(tmp: Path, arrays: dict[str, np.ndarray]) -> None:
    with tmp.open("wb") as f:
        np.savez(f, **arrays)


def _verify(path: Path, record: Path) -> None:
    rec = read_json_or_none(record)
    expected = rec.get("content_sha256") if isinstance(rec, dict) else None
    if expected is None:
        raise UserError(
            f"{path}: no recorded checksum ({record} is missing or damaged); delete {path} to "
            "make the subset again"
        )
    again = f"; delete {path} and {record} to make the subset again"
    with open_npz(path, again) as npz:
        missing = [k for k in ARRAYS if k not in npz.files]
        if missing:
            raise UserError(f"{path}: missing arrays {missing}{again}")
        try:
            got = content_sha256({k: npz[k] for k in ARRAYS})
        except NPZ_FAULTS as exc:
            raise UserError(f"{path}: damaged ({exc}){again}") from None
    if got != expected:
        raise UserError(
            f"{path}: its content (sha256 {got}) is not the subset recorded in {record} "
            f"({expected}); delete both files to make it again"
        )


def load_cifar10_subset(root: Path, download: bool) -> LabelledSet:
    """Source cifar10_subset: 1,000 train + 200 test images per class of torchvision's
    CIFAR-10, drawn with a fixed seed and cached once under `root` (`cached`)."""
    return cached(root, lambda: load_cifar(root, 10, download), load_npz)


@register_source("cifar10_subset")
def read_cifar10_subset(cfg: DataConfig) -> LabelledSet:
    return load_cifar10_subset(source_root(cfg), cfg.download)

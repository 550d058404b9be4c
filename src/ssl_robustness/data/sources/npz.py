"""Source `npz`: train/test image and label arrays in one .npz file (no pickles)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ...config import DataConfig
from ...errors import UserError
from ..listing.labelled import LabelledSet
from .common import source_root
from .registry import register_source

# what numpy raises on a damaged .npz: a zero-byte file (EOFError), a truncated or corrupt zip
NPZ_FAULTS = (OSError, ValueError, EOFError, zipfile.BadZipFile)


def open_npz(path: Path, hint: str = "") -> np.lib.npyio.NpzFile:
    """np.load of an .npz without pickles; an empty, truncated or corrupt file is a UserError
    naming it (`hint`: what to do about it), never numpy's EOFError or BadZipFile."""
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise EOFError("the file is empty (0 bytes)")
        npz = np.load(path, allow_pickle=False)
    except NPZ_FAULTS as exc:
        raise UserError(f"{path}: not a readable .npz file: {exc}{hint}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise UserError(f"{path}: not an .npz archive (a single .npy array){hint}")
    return npz


NPZ_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def _npz_array(npz: np.lib.npyio.NpzFile, path: Path, name: str) -> np.ndarray:
    """One array; an object array (pickled Python objects) or a damaged member is refused."""
    try:
        return npz[name]
    except NPZ_FAULTS as exc:
        why = "an object array (pickled Python objects)" if "allow_pickle" in str(exc) else exc
        raise UserError(f"{path}: {name}: not readable as plain numbers: {why}") from None


def _npz_labels(npz: np.lib.npyio.NpzFile, path: Path, split: str, n_images: int) -> np.ndarray:
    """`<split>_labels` as (N,) int64 class indices, one per image: a (N, 1) column, one-hot
    rows, fractional values or a length other than the images' are refused, never reshaped,
    argmaxed or truncated."""
    name = f"{split}_labels"
    arr = _npz_array(npz, path, name)
    if arr.ndim == 2 and arr.shape[1] > 1:
        raise UserError(
            f"{path}: {name} has shape {arr.shape} (one-hot or scores?); give class indices, "
            f"shape ({arr.shape[0]},): labels.argmax(1) if they are one-hot"
        )
    if arr.ndim != 1:
        raise UserError(f"{path}: {name} must have shape (N,), got {arr.shape}")
    if len(arr) != n_images:
        raise UserError(
            f"{path}: {name} holds {len(arr)} labels for {n_images} {split}_images; "
            "they must be as many"
        )
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    bad = [x for x in arr.tolist() if not (isinstance(x, float) and x.is_integer())][:3]
    what = f"values such as {bad}" if arr.dtype.kind == "f" else f"dtype {arr.dtype}"
    raise UserError(f"{path}: {name} must hold integer class indices, got {what}")


def load_npz(path: Path) -> LabelledSet:
    """Arrays in one .npz: train_images / test_images (N, H, W, 3) uint8, train_labels /
    test_labels, optional class_names (the layout of shared/data/cifar10_subset.npz)."""
    npz = open_npz(path)
    missing = [k for k in NPZ_KEYS if k not in npz.files]
    if missing:
        raise UserError(f"{path}: missing arrays {missing} (has {npz.files})")
    images = [_npz_array(npz, path, "train_images"), _npz_array(npz, path, "test_images")]
    for name, arr in zip(("train_images", "test_images"), images, strict=True):
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise UserError(
                f"{path}: {name} must be uint8 (N, H, W, 3), got {arr.dtype} {arr.shape}"
            )
    labels = np.concatenate(
        [
            _npz_labels(npz, path, split, len(arr))
            for split, arr in zip(("train", "test"), images, strict=True)
        ]
    )
    num = int(labels.max()) + 1 if len(labels) else 0
    names = (
        [str(x) for x in _npz_array(npz, path, "class_names")]
        if "class_names" in npz.files
        else [str(i) for i in range(num)]
    )
    if labels.min() < 0 or labels.max() >= len(names):
        raise UserError(f"{path}: label out of range [0, {len(names)})")
    n_train = len(images[0])
    splits = np.array(["train"] * n_train + ["test"] * len(images[1]), dtype=object)
    items = [f"{path.name}/{s}/{i:06d}" for i, s in enumerate(splits)]
    return LabelledSet(
        items, labels, names, root=path, pixels=np.concatenate(images), official_split=splits
    )


@register_source("npz")
def read_npz(cfg: DataConfig) -> LabelledSet:
    return load_npz(source_root(cfg))

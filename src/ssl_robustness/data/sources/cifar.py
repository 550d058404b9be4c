"""Sources `cifar10` and `cifar100`: torchvision's on-disk CIFAR python batches, downloaded
through torchvision when `data.download` is set."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ...config import DataConfig
from ...errors import UserError
from ..listing.labelled import LabelledSet
from .common import DOWNLOAD_FAULTS, Download, DownloadNeeded, downloads_off, source_root
from .registry import register_source


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR's python batches are pickles: allow numpy arrays and plain containers, nothing else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_batch(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: CIFAR file missing (set data.download: true to fetch it)")
    try:
        with path.open("rb") as fh:
            return _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise UserError(f"{path}: not a CIFAR python batch: {exc}") from None


CIFAR_SIZES = {10: "170 MB (170,498,071 bytes)", 100: "169 MB (169,001,437 bytes)"}


def cifar_download(root: Path, num_classes: int) -> Download:
    """torchvision's CIFAR archive: its URL, file name and MD5 as torchvision checks them."""
    from torchvision.datasets import cifar

    cls = cifar.CIFAR10 if num_classes == 10 else cifar.CIFAR100
    return Download(
        f"CIFAR-{num_classes}",
        cls.url,
        root,
        cls.filename,
        CIFAR_SIZES[num_classes],
        f"md5 {cls.tgz_md5}",
    )


def _download_cifar(root: Path, num_classes: int) -> None:
    """torchvision's download (its MD5 check, its extraction); a failure is one UserError,
    and an archive it left half-written is removed."""
    import torchvision
    from torchvision.datasets.utils import check_integrity

    need = cifar_download(root, num_classes)
    if downloads_off():
        raise DownloadNeeded([need])
    cls = torchvision.datasets.CIFAR10 if num_classes == 10 else torchvision.datasets.CIFAR100
    try:
        cls(str(root), train=True, download=True)
    except DOWNLOAD_FAULTS as exc:
        archive = root / need.filename
        if archive.is_file() and not check_integrity(str(archive), need.checksum.split()[-1]):
            archive.unlink()
        raise need.failed(exc) from None


def load_cifar(root: Path, num_classes: int, download: bool = False) -> LabelledSet:
    """torchvision's on-disk CIFAR python format (`cifar-10-batches-py/`, `cifar-100-python/`)."""
    folder = root / ("cifar-10-batches-py" if num_classes == 10 else "cifar-100-python")
    if not folder.is_dir() and download:
        _download_cifar(root, num_classes)
    if not folder.is_dir():
        raise UserError(
            f"data.root: expected {folder} (torchvision's CIFAR layout; "
            "set data.download: true to fetch it)"
        )
    if num_classes == 10:
        train_files = [f"data_batch_{i}" for i in range(1, 6)]
        test_files, meta_file, label_key, names_key = (
            ["test_batch"],
            "batches.meta",
            "labels",
            "label_names",
        )
    else:
        train_files, test_files = ["train"], ["test"]
        meta_file, label_key, names_key = "meta", "fine_labels", "fine_label_names"
    pixels, labels, splits = [], [], []
    for split, files in (("train", train_files), ("test", test_files)):
        for name in files:
            batch = _read_batch(folder / name)
            data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            pixels.append(data.transpose(0, 2, 3, 1))
            labels.append(np.asarray(batch[label_key], dtype=np.int64))
            splits += [split] * len(data)
    names = list(_read_batch(folder / meta_file)[names_key])
    all_labels = np.concatenate(labels)
    if all_labels.min() < 0 or all_labels.max() >= len(names):
        raise UserError(f"{folder}: label out of range [0, {len(names)})")
    items = [f"cifar{num_classes}/{s}/{i:05d}" for i, s in enumerate(splits)]
    return LabelledSet(
        items,
        all_labels,
        names,
        root=root,
        pixels=np.concatenate(pixels),
        official_split=np.array(splits, dtype=object),
    )


@register_source("cifar10")
def read_cifar10(cfg: DataConfig) -> LabelledSet:
    return load_cifar(source_root(cfg), 10, cfg.download)


@register_source("cifar100")
def read_cifar100(cfg: DataConfig) -> LabelledSet:
    return load_cifar(source_root(cfg), 100, cfg.download)

"""Data sources: each reads one real on-disk layout into a LabelledSet.

Errors name the file (and line) at fault: a missing root, an empty class folder, a label out
of range, an unknown class, a duplicate path.
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import glob
import io
import os
import pickle
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from urllib.error import URLError

import numpy as np

from ..config import DataConfig, ListFilesConfig
from ..errors import UserError, utf8_text
from . import cifar_subset
from .cifar_subset import NPZ_FAULTS, open_npz
from .labelled import LabelledSet
from .splits import pool_counts_before_carving

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".webp")
SPLIT_NAMES = ("train", "val", "test")


def load_source(cfg: DataConfig) -> LabelledSet:
    """Read the configured source into a LabelledSet, keeping the classes `data.classes` keeps."""
    return select_classes(read_source(cfg), cfg)


def read_source(cfg: DataConfig) -> LabelledSet:
    """Every class of the configured source, before the class filters."""
    loaders: dict[str, Callable[[DataConfig], LabelledSet]] = {
        "digits": lambda c: load_digits(),
        "folder": lambda c: load_folder_pair(_root(c), c.test_root),
        "agrinet": lambda c: load_folder_pair(_root(c), c.test_root),
        "awa2": lambda c: load_awa2(_root(c)),
        "list": lambda c: load_list(_root(c), c.list),  # type: ignore[arg-type]
        "cifar10": lambda c: load_cifar(_root(c), 10, c.download),
        "cifar100": lambda c: load_cifar(_root(c), 100, c.download),
        "cifar10_subset": lambda c: load_cifar10_subset(_root(c), c.download),
        "npz": lambda c: load_npz(_root(c)),
    }
    lset = loaders[cfg.source](cfg)
    if lset.num_classes < 2:  # checked here, not in the readers, which also serve tools
        kind = "class folder" if cfg.source in ("folder", "agrinet", "awa2") else "class"
        raise UserError(
            f"data.root: {cfg.root}: only one {kind} ({', '.join(lset.class_names)}); "
            "a study compares classes, so it needs at least 2"
        )
    return lset


def select_classes(lset: LabelledSet, cfg: DataConfig) -> LabelledSet:
    """The classes `data.classes` keeps (include, then exclude, then min_count on the train
    pool), labels re-indexed densely in the source's class order; unknown names are errors."""
    sel = cfg.classes
    if not (sel.include or sel.exclude or sel.min_count):
        return lset
    known = set(lset.class_names)
    for key in ("include", "exclude"):
        unknown = [n for n in getattr(sel, key) if n not in known]
        if unknown:
            shown = ", ".join(lset.class_names[:12]) + (" ..." if lset.num_classes > 12 else "")
            raise UserError(f"data.classes.{key}: unknown class(es) {unknown} (classes: {shown})")
    keep = np.ones(lset.num_classes, dtype=bool)
    if sel.include:
        keep &= np.isin(lset.class_names, sel.include)
    keep &= ~np.isin(lset.class_names, sel.exclude)
    if sel.min_count:
        keep &= pool_counts_before_carving(lset, cfg.split) >= sel.min_count
    kept = np.flatnonzero(keep)
    if len(kept) < 2:
        raise UserError(
            f"data.classes: keeps {len(kept)} class(es) "
            f"({', '.join(lset.class_names[i] for i in kept) or 'none'}) of "
            f"{lset.num_classes}; a study compares classes, so it needs at least 2"
        )
    return relabel(lset, kept)


def listing_class_ids(lset: LabelledSet, listing: LabelledSet | None) -> np.ndarray:
    """Each class's index in the unfiltered `listing` (its label when there is none): what
    seeds its carve and order, so a class filter leaves the kept classes' draws unchanged."""
    if listing is None or listing.class_names == lset.class_names:
        return np.arange(lset.num_classes)
    index: dict[str, int] = {}
    for i, name in enumerate(listing.class_names):
        index.setdefault(name, i)
    return np.array([index[name] for name in lset.class_names], dtype=np.int64)


def relabel(lset: LabelledSet, kept: np.ndarray) -> LabelledSet:
    """The items of classes `kept` (old label indices), labelled 0..len(kept)-1."""
    new_label = np.full(lset.num_classes, -1, dtype=np.int64)
    new_label[kept] = np.arange(len(kept))
    idx = np.flatnonzero(new_label[lset.labels] >= 0)
    return LabelledSet(
        [lset.items[i] for i in idx],
        new_label[lset.labels[idx]],
        [lset.class_names[i] for i in kept],
        lset.root,
        None if lset.pixels is None else lset.pixels[idx],
        None if lset.official_split is None else lset.official_split[idx],
    )


def _root(cfg: DataConfig) -> Path:
    assert cfg.root is not None
    if not cfg.root.exists() and not cfg.download:
        raise UserError(f"data.root: path does not exist: {cfg.root}")
    return cfg.root


# ----------------------------------------------------------------------------- digits
def load_digits() -> LabelledSet:
    """scikit-learn's 1,797 real 8x8 handwritten digits, grey levels 0..16 scaled to uint8 RGB."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    grey = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    pixels = np.repeat(grey[..., None], 3, axis=-1)
    return LabelledSet(
        items=[f"digits/{i:04d}" for i in range(len(grey))],
        labels=bunch.target,
        class_names=[str(c) for c in bunch.target_names],
        pixels=pixels,
    )


# ----------------------------------------------------------------------------- folders
def _is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def _refuse_broken_links(entries: list[Path]) -> None:
    """An image name that is a link to nothing (or to itself) was silently left out of the
    listing, a class then smaller than its folder says: name it instead."""
    broken = [
        p
        for p in entries
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_symlink() and not p.exists()
    ]
    if broken:
        more = f" ... and {len(broken) - 10} more" if len(broken) > 10 else ""
        raise UserError(
            f"{len(broken)} image link(s) point to nothing or to themselves: "
            f"{[str(p) for p in broken[:10]]}{more}; fix or remove them"
        )


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def load_folder(root: Path, class_names: list[str] | None = None) -> LabelledSet:
    """ImageFolder layout `root/<class>/<image>`, or `root/{train,val,test}/<class>/<image>`."""
    if not root.is_dir():
        raise UserError(f"data.root: not a folder: {root}")
    split_dirs = [s for s in SPLIT_NAMES if (root / s).is_dir()]
    if split_dirs and "train" not in split_dirs:
        raise UserError(f"{root}: has {split_dirs} split folders but no train/")
    tops = [(s, root / s) for s in split_dirs] if split_dirs else [(None, root)]
    if class_names is None:
        class_names = [d.name for d in _class_dirs(tops[0][1])]
    if not class_names:
        raise UserError(f"{tops[0][1]}: no class folders found (expected <class>/<image> files)")
    index = {name: i for i, name in enumerate(class_names)}
    items: list[str] = []
    labels: list[int] = []
    splits: list[str] = []
    for split, top in tops:
        for d in _class_dirs(top):
            if d.name not in index:
                raise UserError(f"{d}: class '{d.name}' is not a class of {tops[0][1]}")
            entries = list(d.iterdir())
            _refuse_broken_links(entries)
            files = sorted(p for p in entries if _is_image(p))
            if not files and split in (None, "train"):
                raise UserError(f"{d}: empty class folder (no {'/'.join(IMAGE_EXTENSIONS)} files)")
            for p in files:
                items.append(p.relative_to(root).as_posix())
                labels.append(index[d.name])
                splits.append(split or "")
        if split in (None, "train"):
            missing = set(class_names) - {d.name for d in _class_dirs(top)}
            if missing:
                raise UserError(f"{top}: class folders missing: {sorted(missing)}")
    return LabelledSet(
        items,
        np.array(labels),
        list(class_names),
        root=root,
        official_split=np.array(splits, dtype=object) if split_dirs else None,
    )


def load_folder_pair(root: Path, test_root: Path | None) -> LabelledSet:
    """Class folders under `root`, and with `test_root` the test split's class folders there
    (same class names); items stay relative to `root`."""
    train = load_folder(root)
    if test_root is None:
        return train
    if train.official_split is not None and (train.official_split == "test").any():
        raise UserError(f"data.test_root: {root} already has a test/ split folder")
    test = load_folder(test_root, class_names=train.class_names)
    test_items = [_item(root, test_root, item) for item in test.items]
    splits = train.official_split if train.official_split is not None else [""] * len(train)
    return LabelledSet(
        train.items + test_items,
        np.concatenate([train.labels, test.labels]),
        train.class_names,
        root=root,
        official_split=np.array([*splits, *["test"] * len(test)], dtype=object),
    )


def load_awa2(root: Path) -> LabelledSet:
    """Animals with Attributes 2: `Animals_with_Attributes2/JPEGImages/<class>/` + classes.txt."""
    base = (
        root / "Animals_with_Attributes2" if (root / "Animals_with_Attributes2").is_dir() else root
    )
    images, classes_file = base / "JPEGImages", base / "classes.txt"
    for needed in (images, classes_file):
        if not needed.exists():
            raise UserError(f"data.root: AwA2 layout expects {needed}")
    names = []
    for lineno, line in enumerate(_utf8_text(classes_file).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit():
            raise UserError(f"{classes_file}:{lineno}: expected '<index> <class>', got {line!r}")
        names.append(parts[1])
    lset = load_folder(images, class_names=names)
    lset.items = [f"JPEGImages/{item}" for item in lset.items]
    lset.root = base
    return lset


# ----------------------------------------------------------------------------- split lists
Row = tuple[str, str, str, str]  # (item relative to data.root, label, split, "file:line")


def load_list(root: Path, cfg: ListFilesConfig) -> LabelledSet:
    """Split files: `relative/path label` lines (ImageNet-LT, Places-LT, iNaturalist), CSV/TSV,
    or path-only lines labelled by their folder; several files (or a glob) per split."""
    class_names: list[str] | None = None
    if cfg.classes is not None:
        if not cfg.classes.is_file():
            raise UserError(f"data.list.classes: file not found: {cfg.classes}")
        class_names = _class_names(cfg.classes)
    rows: list[Row] = []
    for split in SPLIT_NAMES:
        for path in list_files(cfg, split):
            base = _base_folder(root, cfg, split, path)
            for p, lab, where in _read_rows(path, cfg, "data.list.label_column"):
                rows.append((_item(root, base, p), lab, split, where))
    if not rows:
        raise UserError(f"data.list.train: no items listed in {list_files(cfg, 'train')}")
    seen: dict[str, str] = {}
    for p, _, _, where in rows:
        if p in seen:
            raise UserError(f"{where}: duplicate path {p!r} (first listed at {seen[p]})")
        seen[p] = where
    numeric = cfg.label_from == "column"  # folder names such as GTSRB's 00000 are names
    labels = _resolve_labels(rows, class_names, numeric)
    names = class_names or _default_names(rows, numeric)
    return LabelledSet(
        [r[0] for r in rows],
        labels,
        names,
        root=root,
        official_split=np.array([r[2] for r in rows], dtype=object),
    )


def list_files(cfg: ListFilesConfig, split: str) -> list[Path]:
    """The list files of a split: each entry a file or a glob (sorted matches)."""
    value = getattr(cfg, split)
    if value is None:
        return []
    out: list[Path] = []
    for entry in value if isinstance(value, list) else [value]:
        text = str(entry)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                raise UserError(f"data.list.{split}: no file matches {text!r}")
            out += files
        elif not entry.is_file():
            raise UserError(f"data.list.{split}: file not found: {entry}")
        else:
            out.append(entry)
    return out


def _base_folder(root: Path, cfg: ListFilesConfig, split: str, list_file: Path) -> Path:
    """The folder a split's listed paths are relative to: its own root, the list file's
    folder, or data.root."""
    if split in cfg.roots:
        base = cfg.roots[split]  # type: ignore[index]
        if not base.is_dir():
            raise UserError(f"data.list.roots.{split}: not a folder: {base}")
        return base
    return list_file.parent if cfg.relative_to == "list" else root


def _item(root: Path, base: Path, listed: str) -> str:
    """A listed path as an item relative to data.root (items, manifests and cache keys stay
    relative to one folder whatever the split's base)."""
    if base == root:
        return listed
    return Path(os.path.relpath(os.path.abspath(base / listed), os.path.abspath(root))).as_posix()


def _utf8_text(path: Path) -> str:
    """A list or class-name file's text; a file in another encoding (Latin-1) is refused with
    the line of its first undecodable byte, never guessed at. A UTF-8 byte-order mark (what
    Excel and Notepad write first) is dropped: it is no part of the first path or header."""
    return utf8_text(path.read_bytes(), path).removeprefix("\ufeff")


def _class_names(path: Path) -> list[str]:
    """data.list.classes, one name a line in label order; a name listed twice would make two
    labels one class (the later index wins), so it is refused with both lines."""
    names: list[str] = []
    first: dict[str, int] = {}
    for lineno, line in enumerate(_utf8_text(path).splitlines(), 1):
        name = line.strip()
        if not name:
            continue
        if name in first:
            raise UserError(
                f"{path}:{lineno}: class name {name!r} listed twice (first on line "
                f"{first[name]}); each line names one class, in label order"
            )
        first[name] = lineno
        names.append(name)
    return names


# how a whitespace-separated list line is split, said where a line does not fit it
WHITESPACE_RULE = (
    "a .txt list line is `path label`: the label is the last whitespace-separated field and "
    "the path is the rest (it may hold spaces); a line with tabs is split at its tabs; other "
    "columns (data.list.path_column/label_column) split at every space: use a .tsv or .csv "
    "for paths with spaces there"
)


def _whitespace_fields(line: str, two_columns: bool) -> list[str]:
    """The fields of a whitespace-separated list line (see WHITESPACE_RULE)."""
    text = line.strip()
    if "\t" in text:
        return [f.strip() for f in text.split("\t")]
    return text.rsplit(None, 1) if two_columns else text.split()


def _read_rows(
    path: Path, cfg: ListFilesConfig, label_key: str | None = None
) -> list[tuple[str, str, str]]:
    """(path, label, "file:line") of each row; `label_key` names the label column's config
    key in errors (the group reader passes data.group_by.column)."""
    suffix = path.suffix.lower()
    delimiter = cfg.delimiter or {".csv": ",", ".tsv": "\t"}.get(suffix)
    by_folder = cfg.label_from == "folder"
    named = isinstance(cfg.path_column, str) or (
        not by_folder and isinstance(cfg.label_column, str)
    )
    columns = [cfg.path_column] if by_folder else [cfg.path_column, cfg.label_column]
    out = []
    with io.StringIO(_utf8_text(path), newline="") as fh:
        if delimiter is None:
            # a path-only line is the whole line (file names may hold spaces)
            two = (cfg.path_column, cfg.label_column) == (0, 1)
            lines = (
                (i, [line.strip()] if by_folder else _whitespace_fields(line, two))
                for i, line in enumerate(fh, 1)
            )
        else:
            reader = csv.reader(fh, delimiter=delimiter)
            lines = ((reader.line_num, row) for row in reader)
        header: list[str] | None = None
        for lineno, fields in lines:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if named and header is None:
                header = fields
                for col in columns:
                    if isinstance(col, str) and col not in header:
                        raise UserError(f"{path}:{lineno}: no column {col!r} in header {header}")
                continue
            idx = [header.index(c) if isinstance(c, str) else c for c in columns]  # type: ignore[union-attr]
            if max(idx) >= len(fields):
                keys = ["data.list.path_column", label_key or "the label column"]
                past = [
                    f"{key} {col!r} (field {i + 1})"
                    for key, col, i in zip(keys, columns, idx, strict=False)
                    if i >= len(fields)
                ]
                rule = f"; {WHITESPACE_RULE}" if delimiter is None else ""
                raise UserError(
                    f"{path}:{lineno}: expected at least {max(idx) + 1} fields, got "
                    f"{len(fields)}: {fields!r} ({', '.join(past)} is past them){rule}"
                )
            item = fields[idx[0]].strip()
            label = _folder_label(item, f"{path}:{lineno}") if by_folder else fields[idx[1]].strip()
            out.append((item, label, f"{path}:{lineno}"))
    return out


def _folder_label(item: str, where: str) -> str:
    parent = Path(item).parent.name
    if not parent:
        raise UserError(
            f"{where}: {item!r} has no folder to take the label from "
            "(data.list.label_from: folder expects <class>/<image> paths)"
        )
    return parent


def _resolve_labels(
    rows: list[Row], names: list[str] | None, numeric_ok: bool = True
) -> np.ndarray:
    numeric = numeric_ok and all(_is_index(lab) for _, lab, _, _ in rows)
    if numeric_ok and not numeric and not (names and all(r[1] in names for r in rows)):
        _refuse_mixed_labels(rows)
    labels = []
    if numeric:
        limit = len(names) if names is not None else None
        for _, lab, _, where in rows:
            value = int(lab)
            if value < 0 or (limit is not None and value >= limit):
                bound = f"[0, {limit})" if limit is not None else ">= 0"
                raise UserError(f"{where}: label {value} out of range {bound}")
            labels.append(value)
        return np.array(labels)
    index = {n: i for i, n in enumerate(names or sorted({lab for _, lab, _, _ in rows}))}
    for _, lab, _, where in rows:
        if lab not in index:
            raise UserError(f"{where}: unknown class {lab!r} (not in data.list.classes)")
        labels.append(index[lab])
    return np.array(labels)


def _is_index(label: str) -> bool:
    return label.lstrip("-").isdigit()


def _refuse_mixed_labels(rows: list[Row]) -> None:
    """Labels that are class indexes on some lines and names on others were all read as names
    ('0', '1', 'cat': three classes, the indexes' meaning lost): refused, naming a line of
    each kind."""
    index = next((r for r in rows if _is_index(r[1])), None)
    name = next((r for r in rows if not _is_index(r[1])), None)
    if index is not None and name is not None:
        raise UserError(
            f"{name[3]}: label {name[1]!r} is a class name, but {index[3]} gives a class "
            f"index ({index[1]}): a list's labels are all indexes (0, 1, ...; names from "
            "data.list.classes) or all names"
        )


def _default_names(rows: list[Row], numeric_ok: bool = True) -> list[str]:
    labs = [lab for _, lab, _, _ in rows]
    if numeric_ok and all(lab.lstrip("-").isdigit() for lab in labs):
        return [str(i) for i in range(max(int(x) for x in labs) + 1)]
    return sorted(set(labs))


# ----------------------------------------------------------------------------- CIFAR
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


@dataclass(frozen=True)
class Download:
    """A file a run fetches from the network: what a plan says and a failed download names,
    so that a user on a machine without network can place it by hand."""

    what: str
    url: str
    folder: Path  # where the file is expected
    filename: str
    size: str  # in words: "170 MB" (what the publisher serves)
    checksum: str  # "md5 c58f...", as the downloader checks it

    def need(self) -> str:
        """The plan's line: what is missing, where, how big and from where."""
        return (
            f"{self.what} is not in {self.folder}; the run will download {self.size} from "
            f"{self.url} ({self.checksum}). Without network, place {self.filename} in "
            f"{self.folder} by hand"
        )

    def failed(self, exc: BaseException) -> UserError:
        """One error for a failed download, naming the URL, the folder and the checksum."""
        why = " ".join(str(getattr(exc, "reason", None) or exc).split()) or type(exc).__name__
        return UserError(
            f"cannot download {self.what} from {self.url}: {why}. Place {self.filename} "
            f"({self.size}, {self.checksum}) in {self.folder} by hand and run again"
        )


class DownloadNeeded(UserError):
    """Raised instead of downloading while downloads are off (`run --plan`): what the run
    would fetch."""

    def __init__(self, downloads: list[Download]) -> None:
        self.downloads = downloads
        super().__init__("; ".join(d.need() for d in downloads))


_DOWNLOADS_OFF: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "downloads_off", default=False
)


@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """Within: a source that would download raises DownloadNeeded instead (a plan fetches
    nothing; it says what a run will need)."""
    token = _DOWNLOADS_OFF.set(True)
    try:
        yield
    finally:
        _DOWNLOADS_OFF.reset(token)


# failures of a download (no network, a refused or cut connection, a corrupt archive); a
# refused write (permission, full disk) is the CLI's to report, with its path
DOWNLOAD_FAULTS = (
    URLError,
    HTTPException,
    ConnectionError,
    TimeoutError,
    RuntimeError,
    tarfile.TarError,
    EOFError,
    zipfile.BadZipFile,
)
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
    if _DOWNLOADS_OFF.get():
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


def load_cifar10_subset(root: Path, download: bool) -> LabelledSet:
    """Source cifar10_subset: 1,000 train + 200 test images per class of torchvision's
    CIFAR-10, drawn with a fixed seed and cached once under `root` (data/cifar_subset.py)."""
    return cifar_subset.cached(root, lambda: load_cifar(root, 10, download), load_npz)


# ----------------------------------------------------------------------------- arrays
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

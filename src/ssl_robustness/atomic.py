"""Atomic writes: a result or checkpoint is either complete on disk or absent.

Every writer goes through a temp file in the destination folder and an `os.replace`, so a
killed run never leaves a half-written file that a later run would mistake for a result.
Temp files are created like `open()` would create them (mode 0666 minus the umask), so a
runs/ folder shared with colleagues stays readable. A run killed mid-write leaves a hidden
`.<name>.<8 chars>.tmp` behind; `remove_orphan_temps` clears those.

Readers for files that can be rebuilt (`read_json_or_none`, `load_torch_or_none`) turn a
truncated or corrupt file into None plus a `CacheWarning` naming it, so callers rebuild
instead of failing or, worse, using garbage.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import re
import secrets
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import UserError

_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
# `.<final name>.<8 random chars>.tmp`: the names `atomic_path` (and, before it, mkstemp) made
TEMP_PATTERN = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


class CacheWarning(UserWarning):
    """A cached or saved file was unusable (stale, truncated, corrupt) and will be rebuilt."""


def warn_rebuild(path: str | os.PathLike[str], why: str) -> None:
    warnings.warn(f"{path}: {why}; rebuilding it", CacheWarning, stacklevel=3)


def _create_temp(path: Path) -> Path:
    """Create an empty temp file beside `path` with the mode a plain open() would give.

    `tempfile.mkstemp` makes files 0600 whatever the umask; O_CREAT with 0666 lets the
    kernel apply the umask, exactly as for any other file the user writes."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        suffix = "".join(secrets.choice(_TEMP_CHARS) for _ in range(8))
        tmp = path.parent / f".{path.name}.{suffix}.tmp"
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temp file name for {path.name}")


class DiskFull(UserError):
    """A write failed because its file system is full: the study stops (every later write
    would fail too), the file that could not be written named, nothing half-written left."""


FULL_BELOW = 1 << 20  # bytes free under which a failed write is taken for a full disk


def _disk_full(where: Path, exc: BaseException) -> bool:
    """Whether a write's failure is a full disk. numpy says only `OSError: 1048576 requested
    and 8192 written` (no errno) and torch `RuntimeError: ... unexpected pos`: for these the
    free space of the file system (measured while the temp file still holds its bytes) tells."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(exc, OSError | RuntimeError):
        return False
    try:
        return shutil.disk_usage(where).free < FULL_BELOW
    except OSError:
        return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it is renamed onto `path`, on error removed
    (a full disk raised as DiskFull, naming `path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temp(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException as exc:
        full = _disk_full(path.parent, exc)
        tmp_path.unlink(missing_ok=True)
        if full:
            raise DiskFull(
                f"{path}: the disk is full (writing it failed: {type(exc).__name__}: "
                f"{str(exc)[:120]}); nothing half-written was left. Free space on "
                f"{path.parent}'s file system, or set output_dir on another disk, and rerun: "
                "finished work is kept"
            ) from None
        raise


def remove_orphan_temps(directory: str | os.PathLike[str], min_age_s: float = 3600.0) -> list[Path]:
    """Delete temp files the atomic writers left below `directory` (a killed run's).

    Only files matching `.<name>.<8 chars>.tmp` and not modified for `min_age_s` seconds are
    removed: a younger one may belong to a writer still running (another study sharing the
    folder). Returns the removed paths."""
    root = Path(directory)
    if not root.is_dir():
        return []
    now = time.time()
    removed = []
    for p in sorted(root.rglob("*.tmp")):
        if not TEMP_PATTERN.match(p.name) or not p.is_file() or p.is_symlink():
            continue
        with contextlib.suppress(FileNotFoundError):
            if now - p.stat().st_mtime >= min_age_s:
                p.unlink()
                removed.append(p)
    return removed


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], Any]) -> Path:
    """Call `writer(tmp_path)` and atomically move the result onto `path`."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    )


def save_torch(path: str | os.PathLike[str], obj: Any) -> Path:
    import torch

    return write_with(path, lambda tmp: torch.save(obj, tmp))


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_json_or_none(path: str | os.PathLike[str], *, warn_missing: bool = False) -> Any:
    """The JSON in `path`, or None when it is missing, truncated or corrupt (then rebuild).

    A corrupt file warns (CacheWarning naming it); a missing one is the normal "not built yet"
    case and warns only with `warn_missing`."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if warn_missing:
            warn_rebuild(path, "missing")
        return None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        warn_rebuild(path, f"truncated or corrupt JSON ({type(exc).__name__}: {exc})")
        return None


def pickled_code_detail(exc: BaseException) -> str | None:
    """The refused global when a weights_only load failed because the file carries code."""
    if not isinstance(exc, pickle.UnpicklingError):
        return None
    blocked = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
    return blocked[0][:200] if blocked else None


def load_torch_or_none(
    path: str | os.PathLike[str], *, warn_missing: bool = False, **kw: Any
) -> Any:
    """torch.load(weights_only=True), or None when the file is missing, truncated or corrupt.

    A file that carries pickled code is not corruption to paper over: it raises UserError."""
    import torch

    if kw.get("weights_only", True) is not True:
        raise ValueError("load_torch_or_none loads with weights_only=True only")
    kw["weights_only"] = True
    kw.setdefault("map_location", "cpu")
    path = Path(path)
    try:
        return torch.load(path, **kw)
    except FileNotFoundError:
        if warn_missing:
            warn_rebuild(path, "missing")
        return None
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, KeyError) as exc:
        detail = pickled_code_detail(exc)
        if detail:
            raise UserError(
                f"{path}: carries pickled code; refused: weights_only load ({detail})"
            ) from None
        first = (str(exc).splitlines() or [""])[0][:200]
        warn_rebuild(path, f"truncated or corrupt ({type(exc).__name__}: {first})")
        return None


def file_digest(path: str | os.PathLike[str], algo: str = "sha256", chunk: int = 1 << 22) -> str:
    """Hex digest (`algo`: any hashlib name) of a file's bytes, read in chunks (a cache may be
    larger than memory; hashlib.file_digest is Python 3.11+)."""
    h = hashlib.new(algo)
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    return file_digest(path)


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

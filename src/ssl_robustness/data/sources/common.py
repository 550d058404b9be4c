"""What every source's reader shares: the image file names it lists, the checks on data.root
and on links, the list and class-name files' text, and the download helpers (what a run
fetches, what a plan says it would fetch, `no_downloads`)."""

from __future__ import annotations

import contextlib
import contextvars
import os
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from urllib.error import URLError

from ...config import DataConfig
from ...errors import UserError, utf8_text

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".webp")
SPLIT_NAMES = ("train", "val", "test")


def source_root(cfg: DataConfig) -> Path:
    """data.root, refused when it does not exist (and nothing will download into it)."""
    assert cfg.root is not None
    if not cfg.root.exists() and not cfg.download:
        raise UserError(f"data.root: path does not exist: {cfg.root}")
    return cfg.root


def is_image(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS


def refuse_broken_links(entries: list[Path]) -> None:
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


def relative_item(root: Path, base: Path, listed: str) -> str:
    """A listed path as an item relative to data.root (items, manifests and cache keys stay
    relative to one folder whatever the split's base)."""
    if base == root:
        return listed
    return Path(os.path.relpath(os.path.abspath(base / listed), os.path.abspath(root))).as_posix()


def read_utf8(path: Path) -> str:
    """A list or class-name file's text; a file in another encoding (Latin-1) is refused with
    the line of its first undecodable byte, never guessed at. A UTF-8 byte-order mark (what
    Excel and Notepad write first) is dropped: it is no part of the first path or header."""
    return utf8_text(path.read_bytes(), path).removeprefix("\ufeff")


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


def downloads_off() -> bool:
    """Whether downloads are off here (within `no_downloads`)."""
    return _DOWNLOADS_OFF.get()

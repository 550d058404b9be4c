"""Decode and resize every image once, into a memory-mapped uint8 cache.

Training epochs then index a (N, S, S, 3) array instead of decoding JPEGs again. The cache is
written to a temp file and renamed, so a killed run never leaves a half-filled cache behind.
Beside it, `<cache>.meta.json` records a fingerprint of the inputs (size and mtime of every
image file, or with `data.fingerprint: content` a hash of its bytes; a hash of in-memory
pixels) and the cache file's SHA-256: a cache whose inputs
changed, or whose bytes were truncated or altered, is rebuilt with a warning, never trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ...atomic import atomic_path, file_sha256, warn_rebuild, write_json
from ...errors import UserError
from ...faults import reached
from ..listing.labelled import LabelledSet

CACHE_VERSION = 2
PROGRESS_EVERY_S = 5.0  # a decode longer than this prints progress
# transparent pixels are composited onto this colour (white, like a browser page)
BACKGROUND = (255, 255, 255)
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


@dataclass(frozen=True)
class BadImage:
    """An image left out with `skip_bad_images`: its index in the LabelledSet and why."""

    index: int
    message: str


def to_rgb(img: Image.Image) -> Image.Image:
    """The RGB picture an image viewer would show: EXIF orientation applied, 16-bit grey
    scaled to 8 bits, transparency composited onto `BACKGROUND`, CMYK/1-bit/palette converted."""
    img = ImageOps.exif_transpose(img)
    if img.mode in _HIGH_DEPTH_MODES:
        img = _high_depth_to_l(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba)
    return img.convert("RGB")


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit grey (PIL modes I;16* and I, whose values span 0..65535) to 8-bit L.

    PIL's own convert clips such values at 255, which turns almost every pixel white."""
    values = np.asarray(img).astype(np.float64)
    return Image.fromarray(np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8), "L")


class CorruptImage(ValueError):
    """An image whose data is damaged where the decoder would fill it in (grey) silently."""


# the decoders' own warnings (PIL's plugins: "Truncated File Read", "Corrupt EXIF data" ...)
# are errors while a cache is decoded; PIL.Image's (a palette conversion, a large image) are not
DECODER_WARNINGS = r"PIL\.(ImageFile|\w+ImagePlugin)"


def jpeg_scan_fault(data: bytes) -> str:
    """Why a JPEG's scan data is damaged ('' when its markers are in order). libjpeg fills a
    scan cut short by a stray marker with grey and only warns, which PIL never shows: a
    restart marker without a restart interval or out of its RST0..7 order, an end-of-image
    marker followed by more scan data, a file that ends inside a scan. (Damage that keeps the
    markers in order, such as zeroed bytes, needs a full Huffman decode and is not caught.)"""
    n, i, interval = len(data), 2, 0
    while i < n:
        if data[i] != 0xFF:  # extraneous bytes before a marker: libjpeg skips them, and so here
            i = data.find(b"\xff", i)
            if i < 0:
                break
        while i < n and data[i] == 0xFF:  # fill bytes before a marker
            i += 1
        if i >= n:
            break
        marker, i = data[i], i + 1
        if marker == 0xD9:  # end of image: more scan data after it means it cut a scan short
            # (data appended after a whole image, a thumbnail or a motion photo's video, does
            # not end in an end-of-image marker of its own, or begins a JPEG of its own)
            tail = data[i:].rstrip(b"\x00")
            body = tail[:-2].strip(b"\x00\xff")
            if tail.endswith(b"\xff\xd9") and body and not body.startswith(b"\xd8"):
                return (
                    f"an end-of-image marker at byte {i - 2} cuts the scan short "
                    f"({len(tail)} bytes of scan data follow it)"
                )
            return ""
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            continue
        if i + 2 > n:
            break
        length = int.from_bytes(data[i : i + 2], "big")
        if marker == 0xDD and length >= 4:  # DRI: the restart interval
            interval = int.from_bytes(data[i + 2 : i + 4], "big")
        i += length
        if marker != 0xDA:  # only a start-of-scan is followed by entropy-coded data
            continue
        expected = 0
        while True:
            j = data.find(b"\xff", i)
            if j < 0 or j + 1 >= n:
                return "the file ends inside the scan data (truncated)"
            nxt = data[j + 1]
            if nxt == 0x00:  # a stuffed 0xFF data byte
                i = j + 2
                continue
            if 0xD0 <= nxt <= 0xD7:
                if not interval:
                    return (
                        f"a restart marker (RST{nxt - 0xD0}) at byte {j} in a scan without restarts"
                    )
                if nxt - 0xD0 != expected:
                    return f"restart marker RST{nxt - 0xD0} at byte {j}, RST{expected} expected"
                expected, i = (expected + 1) % 8, j + 2
                continue
            i = j
            break
    return "the file ends before its end-of-image marker (truncated)"


def decode_image(path: Path, size: int) -> np.ndarray:
    """RGB uint8 (size, size, 3): shorter side resized to `size`, then centre-cropped. A
    truncated image or a JPEG with damaged scan data raises (OSError, CorruptImage): never
    the grey fill a lenient decoder would return."""
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        if img.format in ("JPEG", "MPO"):
            fault = jpeg_scan_fault(data)
            if fault:
                raise CorruptImage(f"corrupt JPEG scan data: {fault}")
        img.load()
        img = to_rgb(img)
        w, h = img.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
        return np.asarray(img, dtype=np.uint8)


def resize_pixels(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize in-memory uint8 images (N, H, W, 3) to (N, size, size, 3), antialiased."""
    if pixels.shape[1] == size and pixels.shape[2] == size:
        return np.ascontiguousarray(pixels)
    out = np.empty((len(pixels), size, size, 3), dtype=np.uint8)
    for start in range(0, len(pixels), 4096):
        x = torch.from_numpy(pixels[start : start + 4096]).permute(0, 3, 1, 2).float()
        y = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + 4096] = y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return out


def meta_path(cache_file: Path) -> Path:
    return cache_file.with_suffix(".meta.json")


def input_fingerprint(
    lset: LabelledSet, indices: np.ndarray, size: int, content: bool = False
) -> dict[str, Any]:
    """What the cache was built from: size and mtime of every file (`content`: a hash of each
    file's bytes, which a replaced file of equal size and restored mtime cannot fool), or a
    hash of the pixels.

    Raises UserError naming the files that do not exist (a wrong root, not bad images)."""
    h = hashlib.sha256(np.ascontiguousarray(indices, dtype=np.int64).tobytes())
    if lset.pixels is not None:
        h.update(np.ascontiguousarray(lset.pixels[indices]).data)
        return {
            "kind": "pixels",
            "image_size": size,
            "count": len(indices),
            "sha256": h.hexdigest(),
        }
    assert lset.root is not None
    missing = []
    for i in indices:
        item = lset.items[int(i)]
        try:
            st = os.stat(lset.root / item)
        except FileNotFoundError:
            missing.append(str(lset.root / item))
            continue
        if content:
            h.update(f"{item}\t{file_sha256(lset.root / item)}\n".encode())
        else:
            h.update(f"{item}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    if missing:
        more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise UserError(
            f"{len(missing)} image file(s) do not exist (is data.root {lset.root} right?):\n  "
            + "\n  ".join(missing[:20])
            + more
        )
    kind = "file-contents" if content else "files"
    return {"kind": kind, "image_size": size, "count": len(indices), "sha256": h.hexdigest()}


def build_image_cache(
    lset: LabelledSet,
    indices: np.ndarray,
    size: int,
    cache_file: Path,
    *,
    skip_bad: bool = False,
    workers: int = 4,
    content_fingerprint: bool = False,
) -> tuple[np.ndarray, list[BadImage]]:
    """Images of `indices` as a read-only memmap; returns (array, bad images).

    Unreadable images fail the run with their paths listed, unless `skip_bad`, in which case
    they are returned (index into `lset` + message), recorded beside the cache, and left out
    by the caller. A missing file always fails: it means a wrong root, not a bad image.
    """
    inputs = input_fingerprint(lset, indices, size, content_fingerprint)
    shape = (len(indices), size, size, 3)
    cached = _load_verified(cache_file, inputs, shape, indices)
    if cached is not None:
        array, bad = cached
        if bad and not skip_bad:
            raise _unreadable_error([b.message for b in bad])
        return array, bad
    cache_file.with_suffix(".bad.json").unlink(missing_ok=True)  # the old, unchecked sidecar
    bad: list[BadImage] = []
    started = time.perf_counter()  # the decode phase of the cost table (report/cost.py)
    with atomic_path(cache_file) as tmp:
        if lset.pixels is not None:
            with tmp.open("wb") as fh:
                np.save(fh, resize_pixels(lset.pixels[indices], size))
        else:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            bad = _decode_into(out, lset, indices, size, workers)
            if bad and not skip_bad:
                raise _unreadable_error([b.message for b in bad])
            out.flush()
            del out  # close the memmap before hashing and the rename
        meta = {
            "version": CACHE_VERSION,
            "inputs": inputs,
            "bytes": tmp.stat().st_size,
            "sha256": file_sha256(tmp),
            "bad": [asdict(b) for b in bad],
            "seconds": round(time.perf_counter() - started, 3),
        }
    write_json(meta_path(cache_file), meta)
    return np.load(cache_file, mmap_mode="r"), bad


def _unreadable_error(messages: list[str]) -> UserError:
    more = f"\n  ... and {len(messages) - 20} more" if len(messages) > 20 else ""
    return UserError(
        f"{len(messages)} unreadable image(s) (set data.skip_bad_images: true to "
        f"skip and count them):\n  " + "\n  ".join(messages[:20]) + more
    )


def _load_verified(
    cache_file: Path, inputs: dict[str, Any], shape: tuple[int, ...], indices: np.ndarray
) -> tuple[np.ndarray, list[BadImage]] | None:
    """The cache and its bad images if its record matches `inputs` and its bytes check out;
    otherwise None, with one CacheWarning naming the file and saying why (then the caller
    rebuilds it). A record that cannot be replaced (a folder in its place) is refused before
    anything is said about rebuilding."""
    if not cache_file.exists():
        return None
    record = meta_path(cache_file)
    if record.exists() and not record.is_file():
        raise UserError(
            f"{record}: a folder where the record of the image cache {cache_file.name} "
            "belongs; remove it and the cache is rebuilt"
        )
    no_record = "image cache without a valid checksum record"
    try:
        meta = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        meta, why = None, f"image cache without a valid checksum record ({record} is missing)"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        meta, why = None, f"{no_record}: {record}: truncated or corrupt JSON ({exc})"
    else:
        why = f"{no_record}: {record} holds a {type(meta).__name__}, not a record"
    if not isinstance(meta, dict):
        warn_rebuild(cache_file, why)
        return None
    try:
        if meta["version"] != CACHE_VERSION or meta["inputs"] != inputs:
            warn_rebuild(
                cache_file,
                "image cache built from different inputs (an image file was replaced or "
                "modified, or the pixels changed)",
            )
            return None
        actual = cache_file.stat().st_size
        if actual != meta["bytes"]:
            warn_rebuild(
                cache_file, f"image cache truncated ({actual} bytes, {meta['bytes']} written)"
            )
            return None
        if file_sha256(cache_file) != meta["sha256"]:
            warn_rebuild(cache_file, "image cache content does not match its checksum (corrupted)")
            return None
        bad = [BadImage(int(b["index"]), str(b["message"])) for b in meta["bad"]]
        decoded = {int(i) for i in indices}
        stray = [b.index for b in bad if b.index not in decoded]
        if stray or len({b.index for b in bad}) != len(bad):
            warn_rebuild(
                cache_file,
                f"image cache record lists bad images it did not decode ({stray[:5]}) or one twice",
            )
            return None
    except (KeyError, TypeError, ValueError) as exc:
        warn_rebuild(cache_file, f"image cache record malformed ({type(exc).__name__}: {exc})")
        return None
    try:
        array = np.load(cache_file, mmap_mode="r")
    except (ValueError, OSError) as exc:
        warn_rebuild(cache_file, f"image cache unreadable ({exc})")
        return None
    if array.shape != shape or array.dtype != np.uint8:
        warn_rebuild(cache_file, f"image cache holds {array.dtype} {array.shape}, not {shape}")
        return None
    return array, bad


def _decode_into(
    out: np.ndarray, lset: LabelledSet, indices: np.ndarray, size: int, workers: int
) -> list[BadImage]:
    """Decode images into `out` with a thread pool (PIL releases the GIL); return the
    unreadable ones (their LabelledSet index and a message), whose rows are left black."""
    root = lset.root
    assert root is not None
    bad_errors = (
        OSError,
        UnidentifiedImageError,
        ValueError,
        Image.DecompressionBombError,
        UserWarning,
    )

    def work(j: int) -> BadImage | None:
        reached("image-cache")  # failpoint: tests kill the build here (faults.py)
        index = int(indices[j])
        path = root / lset.items[index]
        try:
            out[j] = decode_image(path, size)
            return None
        except FileNotFoundError:
            out[j] = 0
            return BadImage(index, f"{path}: file does not exist (removed while decoding)")
        except bad_errors as e:
            out[j] = 0
            return BadImage(index, f"{path}: {type(e).__name__}: {e}")

    bad = []
    # set for the whole pool, in this thread: warning filters and PIL's flag are global, and
    # catch_warnings inside the workers would race. A library that set
    # LOAD_TRUNCATED_IMAGES (some do at import) would make a cut-off image a grey one.
    lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("error", category=UserWarning, module=DECODER_WARNINGS)
            with (
                ThreadPoolExecutor(max_workers=workers) as pool,
                DecodeProgress(len(indices)) as progress,
            ):
                for b in pool.map(work, range(len(indices))):
                    progress.step()
                    if b is not None:
                        bad.append(b)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    return bad


class DecodeProgress:
    """Progress of a decode longer than a few seconds: a bar on a terminal, else a flushed line
    on stderr every PROGRESS_EVERY_S seconds (logs show it live)."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.start = self.last = time.perf_counter()
        self.bar: Any = None

    def __enter__(self) -> DecodeProgress:
        return self

    def step(self) -> None:
        self.done += 1
        now = time.perf_counter()
        if self.bar is not None:
            self.bar.update(1)
        elif now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            if sys.stderr.isatty():
                from tqdm.auto import tqdm

                self.bar = tqdm(total=self.total, initial=self.done, desc="decoding images")
            else:
                print(
                    f"decoding images: {self.done:,}/{self.total:,} "
                    f"({self.done / self.total:.0%}) in {now - self.start:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.last > self.start:  # lines were printed: say it ended
            print(
                f"decoding images: {self.done:,}/{self.total:,} in "
                f"{time.perf_counter() - self.start:.0f}s",
                file=sys.stderr,
                flush=True,
            )

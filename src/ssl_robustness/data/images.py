"""Decode and resize every image once, into a memory-mapped uint8 cache.

Training epochs then index a (N, S, S, 3) array instead of decoding JPEGs again. The cache is
written to a temp file and renamed, so a killed run never leaves a half-filled cache behind.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..atomic import atomic_path, write_json
from ..errors import UserError
from .labelled import LabelledSet


def decode_image(path: Path, size: int) -> np.ndarray:
    """RGB uint8 (size, size, 3): shorter side resized to `size`, then centre-cropped."""
    with Image.open(path) as img:
        img.load()
        if img.mode in ("RGBA", "LA", "P"):
            img = img.convert("RGBA")
            background = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, img)
        img = img.convert("RGB")
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


def build_image_cache(
    lset: LabelledSet,
    indices: np.ndarray,
    size: int,
    cache_file: Path,
    *,
    skip_bad: bool = False,
    workers: int = 4,
) -> tuple[np.ndarray, list[str]]:
    """Images of `indices` as a read-only memmap; returns (array, bad item paths).

    Unreadable images fail the run with their paths listed, unless `skip_bad`, in which case
    they are recorded in a sidecar file and left out by the caller.
    """
    bad_file = cache_file.with_suffix(".bad.json")
    if cache_file.exists() and bad_file.exists():
        return np.load(cache_file, mmap_mode="r"), json.loads(bad_file.read_text())
    if lset.pixels is not None:
        array = resize_pixels(lset.pixels[indices], size)
        with atomic_path(cache_file) as tmp, tmp.open("wb") as fh:
            np.save(fh, array)
        write_json(bad_file, [])
        return np.load(cache_file, mmap_mode="r"), []
    with atomic_path(cache_file) as tmp:
        out = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint8, shape=(len(indices), size, size, 3)
        )
        bad = _decode_into(out, lset, indices, size, workers)
        if bad and not skip_bad:
            more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
            raise UserError(
                f"{len(bad)} unreadable image(s) (set data.skip_bad_images: true to "
                f"skip and count them):\n  " + "\n  ".join(bad[:20]) + more
            )
        out.flush()
        del out  # close the memmap before the rename
    write_json(bad_file, bad)
    return np.load(cache_file, mmap_mode="r"), bad


def _decode_into(
    out: np.ndarray, lset: LabelledSet, indices: np.ndarray, size: int, workers: int
) -> list[str]:
    """Decode images into `out` with a thread pool (PIL releases the GIL); return messages
    for the unreadable ones, whose rows are left black."""
    root = lset.root
    assert root is not None
    bad_errors = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)

    def work(j: int) -> str | None:
        path = root / lset.items[int(indices[j])]
        try:
            out[j] = decode_image(path, size)
            return None
        except bad_errors as e:
            out[j] = 0
            return f"{path}: {type(e).__name__}: {e}"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [msg for msg in pool.map(work, range(len(indices))) if msg]

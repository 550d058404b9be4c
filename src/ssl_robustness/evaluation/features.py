"""Pooled features of a frozen backbone, extracted once per split and cached on disk.

Each `<name>.npy` has a `<name>.meta.json` beside it holding the SHA-256 of the features and
index files: a truncated or corrupted file is rebuilt (with a warning), like a missing one.
The record also holds the items key of the indices (`StudyData.items_key`): the same index
numbers can name other images (another `data.test_root`, other `data.classes`), and features
of other images are rebuilt (with a warning), never reused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path, file_sha256, read_json_or_none, warn_rebuild, write_json
from ..engine.device import autocast, prepare_model
from ..methods.augment import eval_view


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    images: np.ndarray,
    indices: np.ndarray,
    device: torch.device,
    batch_size: int | None = None,
) -> np.ndarray:
    """Features of `images[indices]` in batches of `batch_size` (default 512, or as many as
    keep a vision transformer's activations near 2 GiB: ViTBackbone.feature_batch)."""
    if batch_size is None:
        sized = getattr(backbone, "feature_batch", None)
        batch_size = sized() if callable(sized) else 512
    backbone = prepare_model(backbone.eval(), device)
    out = []
    for start in range(0, len(indices), batch_size):
        sel = np.asarray(indices[start : start + batch_size])
        x = torch.from_numpy(np.ascontiguousarray(images[sel])).to(device)
        x = eval_view(x)
        with autocast(device):
            out.append(backbone(x).float().cpu())
    dim = getattr(backbone, "feature_dim", 0)
    return torch.cat(out).numpy() if out else np.zeros((0, dim), np.float32)


def cached_features(
    cache_dir: Path,
    name: str,
    backbone: nn.Module,
    images: np.ndarray,
    indices: np.ndarray,
    device: torch.device,
    items: str | None = None,
) -> np.ndarray:
    """Features of `indices`, from `cache_dir/name.npy` when present, intact and (given
    `items`, the items key of `indices`) extracted from the same images (float32)."""
    path = cache_dir / f"{name}.npy"
    index_path = cache_dir / f"{name}.index.npy"
    meta_file = cache_dir / f"{name}.meta.json"
    cached = _load_verified(path, index_path, meta_file, indices, items)
    if cached is not None:
        return cached
    feats = extract_features(backbone, images, indices, device).astype(np.float32)
    for target, arr in ((path, feats), (index_path, np.asarray(indices))):
        with atomic_path(target) as tmp, tmp.open("wb") as fh:
            np.save(fh, arr)
    meta = {"features_sha256": file_sha256(path), "index_sha256": file_sha256(index_path)}
    if items is not None:
        meta["items"] = items
    write_json(meta_file, meta)
    return feats


def _load_verified(
    path: Path, index_path: Path, meta_file: Path, indices: np.ndarray, items: str | None
) -> np.ndarray | None:
    """Cached features if they were computed for `indices` (and `items`) and their bytes
    check out; None otherwise (a CacheWarning names a file that exists but is damaged, or
    whose images differ)."""
    if not path.exists() or not index_path.exists():
        return None
    meta = read_json_or_none(meta_file)
    if not isinstance(meta, dict):
        warn_rebuild(path, "cached features without a valid checksum record beside them")
        return None
    for file, key in ((path, "features_sha256"), (index_path, "index_sha256")):
        if file_sha256(file) != meta.get(key):
            warn_rebuild(file, "cached features truncated or corrupted (checksum mismatch)")
            return None
    try:
        cached_idx = np.load(index_path)
        if not np.array_equal(cached_idx, indices):
            return None  # computed for another index set: not damage, just stale
        if items is not None and meta.get("items") != items:
            why = "other images" if "items" in meta else "images it did not record"
            warn_rebuild(path, f"cached features extracted from {why} (same indices)")
            return None
        feats = np.load(path)
    except (ValueError, OSError, EOFError) as exc:
        warn_rebuild(path, f"cached features unreadable ({exc})")
        return None
    if feats.dtype != np.float32 or feats.ndim != 2 or len(feats) != len(indices):
        warn_rebuild(path, f"cached features hold {feats.dtype} {feats.shape}")
        return None
    return feats

"""Pooled features of a frozen backbone, extracted once per split and cached on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_path
from ..data.augment import eval_view
from ..engine.device import autocast, prepare_model


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    images: np.ndarray,
    indices: np.ndarray,
    device: torch.device,
    batch_size: int = 512,
) -> np.ndarray:
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
) -> np.ndarray:
    """Features of `indices`, from `cache_dir/name.npy` when present (float32)."""
    path = cache_dir / f"{name}.npy"
    index_path = cache_dir / f"{name}.index.npy"
    if path.exists() and index_path.exists() and np.array_equal(np.load(index_path), indices):
        return np.load(path)
    feats = extract_features(backbone, images, indices, device).astype(np.float32)
    for target, arr in ((path, feats), (index_path, np.asarray(indices))):
        with atomic_path(target) as tmp, tmp.open("wb") as fh:
            np.save(fh, arr)
    return feats

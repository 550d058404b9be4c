"""Shared fixtures: tiny image folders and a tiny study config on the embedded digits."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)


def write_image(path: Path, seed: int, size: int = 12, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 255, (size, size + 2, channels), dtype=np.uint8)
    img = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
    img.save(path)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """root/<class>/<image>: 3 classes with 14, 10 and 8 images in mixed formats and modes."""
    root = tmp_path / "folder"
    counts = {"ant": 14, "bee": 10, "cat": 8}
    k = 0
    for name, n in counts.items():
        for i in range(n):
            ext, mode = [(".png", "RGB"), (".jpg", "RGB"), (".png", "RGBA"), (".bmp", "L")][i % 4]
            write_image(root / name / f"img{i:02d}{ext}", k, mode=mode)
            k += 1
    return root


def tiny_study(tmp_path: Path, **overrides) -> dict:
    """A raw study config on the digits that trains in seconds."""
    raw = {
        "name": "tiny",
        "output_dir": str(tmp_path / "study"),
        "seeds": [0],
        "device": "cpu",
        "data": {
            "source": "digits",
            "image_size": 8,
            "split": {"val_per_class": 5, "test_per_class": 10},
            "imbalance": {"profile": "exp", "ratio": 0.2, "n": 300},
        },
        "backbone": {"name": "resnet_tiny", "width": 8},
        "pretrain": {"epochs": 2, "batch_size": 64, "checkpoint_every": 1},
        "methods": [{"name": "supervised"}, {"name": "simclr"}],
        "evaluation": {
            "linear": {"train_on": ["balanced"], "l2_grid": [1e-3]},
            "knn": {"k": [5]},
            "finetune": {"epochs": 1, "batch_size": 64},
        },
        "report": {"tsne_max_points": 60},
    }
    for key, value in overrides.items():
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return raw


def end_spawned_worker() -> NoReturn:
    """End an `mp.spawn` worker that finished cleanly, its results saved and its process group
    destroyed, without the interpreter's teardown: there gloo's worker threads can still hold
    tensors and abort the process ("terminate called without an active exception", SIGABRT),
    a PyTorch issue seen here in about 1 run in 10 (pytorch/pytorch#179291)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

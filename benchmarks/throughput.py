"""Where the training time goes, against baselines measured in the same run.

    python benchmarks/throughput.py [--width 16] [--size 32] [--batch 256]

1. Augmentation: our batched per-sample pipeline vs a per-image torchvision.transforms.v2
   loop with the same operations (the seed project's approach).
2. Memory format: a training step's forward+backward in channels_last vs contiguous.
3. Each method's full training step (two views, heads, loss, optimizer) in images/s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torchvision.models.resnet import BasicBlock
from torchvision.transforms import v2

from ssl_robustness.config import (
    BYOLConfig,
    MocoV2Config,
    OptimizerConfig,
    SimCLRConfig,
    SimSiamConfig,
    SupervisedConfig,
    TrainConfig,
)
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.loop import fit
from ssl_robustness.methods import build_method
from ssl_robustness.methods.augment import augment
from ssl_robustness.methods.mocov2 import MOCOV2_VIEW
from ssl_robustness.models.backbones import ResNet


def timed(fn, repeat: int = 3) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    b, s = args.batch, args.size
    images = torch.randint(0, 255, (b, s, s, 3), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)

    loop = v2.Compose(
        [
            v2.RandomResizedCrop(s, scale=(0.2, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            v2.RandomGrayscale(0.2),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    chw = images.permute(0, 3, 1, 2)
    t_loop = timed(lambda: torch.stack([loop(img) for img in chw]))
    t_ours = timed(lambda: augment(images, MOCOV2_VIEW, g))
    print(
        f"augmentation, {b} images at {s} px: per-image v2 loop {b / t_loop:8.0f} img/s, "
        f"batched {b / t_ours:8.0f} img/s  -> {t_loop / t_ours:.1f}x"
    )

    def step(model, x):
        model(x).sum().backward()

    x = torch.randn(2 * b, 3, s, s)
    plain = ResNet(BasicBlock, [1, 1, 1, 1], args.width, small_stem=s <= 64)
    t_plain = timed(lambda: step(plain, x))
    cl = ResNet(BasicBlock, [1, 1, 1, 1], args.width, small_stem=s <= 64).to(
        memory_format=torch.channels_last
    )
    xcl = x.contiguous(memory_format=torch.channels_last)
    t_cl = timed(lambda: step(cl, xcl))
    print(
        f"forward+backward, {2 * b} images: contiguous {2 * b / t_plain:6.0f} img/s, "
        f"channels_last {2 * b / t_cl:6.0f} img/s  -> {t_plain / t_cl:.2f}x"
    )

    data = np.random.default_rng(0).integers(0, 255, (4 * b, s, s, 3), dtype=np.uint8)
    labels = np.arange(4 * b) % 10
    cpu = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for cfg in (SupervisedConfig(), MocoV2Config(), SimSiamConfig(), SimCLRConfig(), BYOLConfig()):
        torch.manual_seed(0)
        method = build_method(
            cfg,
            ResNet(BasicBlock, [1, 1, 1, 1], args.width, s <= 64),
            num_classes=10,
            class_counts=np.bincount(labels),
            train_size=len(labels),
        )
        batches = ArrayBatches(data, labels, np.arange(len(labels)), b, cpu)
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            fit(
                method,
                batches,
                TrainConfig(
                    epochs=2, batch_size=b, checkpoint_every=100, optimizer=OptimizerConfig(lr=0.01)
                ),
                Path(tmp),
                seed=0,
            )
            dt = time.perf_counter() - t0
        print(
            f"{cfg.name:10s} training: {2 * len(labels) / dt:6.0f} images/s "
            f"(2 epochs of {len(labels)}, batch {b}, incl. checkpoint)"
        )


if __name__ == "__main__":
    main()

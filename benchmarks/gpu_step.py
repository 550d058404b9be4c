"""Our training step on a GPU, with and without AMP and channels_last, in images/s.

    python benchmarks/gpu_step.py [--method mocov2] [--arch resnet50] [--size 224]
                                  [--batch 128] [--steps 100]

Times `engine.loop.train_one_epoch` (the code `fit` runs: pinned uint8 batches, batched
augmentation on the device, the method's step) for MoCo v2 on random uint8 images at
`--size` px, in four variants: fp32 contiguous (the baseline), fp32 channels_last, AMP
contiguous, and AMP channels_last (what `fit` does on a GPU). It prints images/s and each
variant's speed-up over the baseline, measured in the same run, so each setting is kept only
where it is measured to help. Without CUDA it runs on CPU (small sizes only: a smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator

import numpy as np
import torch
from throughput import bench_state  # this folder's script, on sys.path when run as one

from ssl_robustness.config import (
    BackboneConfig,
    MocoV2Config,
    SimCLRConfig,
    SimSiamConfig,
    SupervisedConfig,
    TrainConfig,
)
from ssl_robustness.engine import device as device_module
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.device import prepare_model, resolve_device
from ssl_robustness.engine.loop import train_one_epoch
from ssl_robustness.methods import augment, build_method
from ssl_robustness.models.backbones import build_backbone

METHODS = {
    "mocov2": MocoV2Config,
    "simclr": SimCLRConfig,
    "simsiam": SimSiamConfig,
    "supervised": SupervisedConfig,
}


@contextlib.contextmanager
def variant(amp: bool, channels_last: bool) -> Iterator[None]:
    """Switch AMP and channels_last off where `fit` would turn them on (the places that ask)."""
    saved = device_module.amp_dtype, device_module.channels_last, augment.channels_last
    if not amp:
        device_module.amp_dtype = lambda device: None
    if not channels_last:
        device_module.channels_last = augment.channels_last = lambda device: False
    try:
        yield
    finally:
        device_module.amp_dtype, device_module.channels_last, augment.channels_last = saved


def images_per_second(args: argparse.Namespace, dev: torch.device) -> float:
    """Build the method afresh, warm up, then time `--steps` steps of one epoch."""
    torch.manual_seed(0)
    pool = 4 * args.batch  # a small pool of images, drawn over and over
    images = np.random.default_rng(0).integers(0, 255, (pool, args.size, args.size, 3), np.uint8)
    labels = np.arange(pool) % 10
    method = build_method(
        METHODS[args.method](),
        build_backbone(BackboneConfig(name=args.arch), args.size),
        num_classes=10,
        class_counts=np.bincount(labels),
        train_size=pool,
    )
    model = prepare_model(method, dev)
    cfg = TrainConfig(epochs=1, batch_size=args.batch, log_every=10**6)
    state = bench_state(model, dev, cfg)

    def epoch(steps: int) -> float:
        idx = np.resize(np.arange(pool), steps * args.batch)
        batches = ArrayBatches(images, labels, idx, args.batch, dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_one_epoch(state, model, batches, cfg, 0, None, "gpu-step")
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    epoch(args.warmup)
    return args.steps * args.batch / epoch(args.steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", choices=sorted(METHODS), default="mocov2")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (cuDNN autotune)")
    args = ap.parse_args()
    dev = resolve_device("auto")
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (smoke test only)"
    tf32 = torch.backends.cudnn.allow_tf32 and dev.type == "cuda"
    print(
        f"{args.method}, {args.arch} at {args.size} px, batch {args.batch}, {args.steps} timed "
        f"steps after {args.warmup}, on {name}; torch {torch.__version__}; "
        f"AMP dtype where on: {device_module.amp_dtype(dev)}; 'fp32' convolutions "
        f"{'may use TF32 (cuDNN default)' if tf32 else 'are fp32'}; the variants run one "
        "after another, not interleaved"
    )
    base = None
    for amp, cl in ((False, False), (False, True), (True, False), (True, True)):
        with variant(amp, cl):
            rate = images_per_second(args, dev)
        base = base or rate
        label = f"{'AMP' if amp else 'fp32'} {'channels_last' if cl else 'contiguous'}"
        ours = "  <- what fit does" if amp and cl else ""
        print(f"{label:26s} {rate:8.1f} images/s  {rate / base:5.2f}x{ours}", flush=True)


if __name__ == "__main__":
    main()

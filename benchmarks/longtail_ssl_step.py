"""The cost of the long-tail SSL methods over SimCLR, as a ratio of training-step times.

`--plan` counts image passes, which are the same for simclr, simclr-ts, sdclr and bcl (two
forward passes of one view each a step); what it does not see is the work around them:
SDCLR's mask product each step and its re-pruning (a sort of |w|) each epoch, BCL's
RandAugment operations. This times full steps (augmentations, forward, backward, SGD update,
after_step) of each method on random images, the methods interleaved round by round so a busy
machine slows them alike, and prints each one's median step time over SimCLR's.

    python benchmarks/longtail_ssl_step.py [--batch 128 --size 32 --width 16 --rounds 5]

BCL's strengths are drawn uniform in [0, 1] per image (its rule spreads them over [0, 1]
around 1/2); `--bcl-strength 1` gives its most expensive step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ssl_robustness.config import (
    BackboneConfig,
    BCLConfig,
    SDCLRConfig,
    SimCLRConfig,
)
from ssl_robustness.engine.step import StepContext
from ssl_robustness.methods import build_method
from ssl_robustness.models.backbones import build_backbone

METHODS = {
    "simclr": SimCLRConfig(),
    "simclr-ts": SimCLRConfig(temperature_schedule={}),
    "sdclr": SDCLRConfig(),
    "bcl": BCLConfig(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round")
    parser.add_argument("--bcl-strength", type=float, default=None)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = torch.from_numpy(
        rng.integers(0, 256, (args.batch, args.size, args.size, 3), dtype=np.uint8)
    )
    labels = torch.zeros(args.batch, dtype=torch.long)
    backbone_cfg = BackboneConfig(name="resnet_tiny", width=args.width, layers=[1, 1, 1, 1])
    arms = {}
    for label, cfg in METHODS.items():
        torch.manual_seed(0)
        method = build_method(
            cfg,
            build_backbone(backbone_cfg, args.size),
            num_classes=10,
            class_counts=np.full(10, args.batch // 10),
            train_size=args.batch,
        )
        if label == "bcl":
            s = args.bcl_strength
            method.strength.copy_(
                torch.rand(args.batch) if s is None else torch.full_like(method.strength, s)
            )
        method.train()
        opt = torch.optim.SGD(method.parameters(), lr=0.01, momentum=0.9)
        arms[label] = (method, opt, torch.Generator().manual_seed(0))

    def step(label: str, i: int) -> None:
        method, opt, g = arms[label]
        ctx = StepContext(g, i / 1000, torch.arange(args.batch))
        out = method(images, labels, ctx)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        method.after_step((i + 1) / 1000)

    times: dict[str, list[float]] = {label: [] for label in arms}
    for label in arms:
        step(label, 0)  # warm-up
    for r in range(args.rounds):
        for label in arms:
            start = time.perf_counter()
            for s in range(args.steps):
                step(label, 1 + r * args.steps + s)
            times[label].append((time.perf_counter() - start) / args.steps)
    sdclr = arms["sdclr"][0]
    start = time.perf_counter()
    sdclr.prune()
    prune_s = time.perf_counter() - start

    base = statistics.median(times["simclr"])
    print(
        f"batch {args.batch}, {args.size} px, resnet_tiny width {args.width}, "
        f"{torch.get_num_threads()} threads, {args.rounds} rounds of {args.steps} steps"
    )
    for label, ts in times.items():
        med = statistics.median(ts)
        print(
            f"{label:10s} {med * 1000:8.1f} ms/step (rounds {min(ts) * 1000:.0f}-"
            f"{max(ts) * 1000:.0f})  x{med / base:.2f} SimCLR's"
        )
    print(f"sdclr re-pruning (once an epoch): {prune_s * 1000:.1f} ms")


if __name__ == "__main__":
    main()

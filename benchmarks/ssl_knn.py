"""Do the SSL methods learn? kNN accuracy of features after a fixed CPU budget, against
random-init features of the same backbone measured in the same run.

    python benchmarks/ssl_knn.py --budget-minutes 15 --methods mocov2 simclr

Data: ../shared/data/cifar10_subset.npz (10,000 real CIFAR-10 train images, 2,000 test).
Each method pretrains on the 10k train images for as many epochs as fit its budget (measured
from a short calibration), then a weighted kNN (k=20 and 200) on frozen features scores the
2k test images, the 10k train features being the memory bank.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.models.resnet import BasicBlock

from ssl_robustness.config import (
    BYOLConfig,
    MocoV2Config,
    OptimizerConfig,
    SimCLRConfig,
    SimSiamConfig,
    TrainConfig,
)
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.loop import fit, seed_everything
from ssl_robustness.evaluation.features import extract_features
from ssl_robustness.evaluation.knn import knn_scores
from ssl_robustness.methods import build_method
from ssl_robustness.models.backbones import ResNet

METHODS = {
    "mocov2": (MocoV2Config(queue_size=4096, temperature=0.2, momentum=0.99), 0.06),
    "simclr": (SimCLRConfig(temperature=0.2), 0.1),
    "simsiam": (SimSiamConfig(), 0.05),
    "byol": (BYOLConfig(), 0.1),
}
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_subset.npz"


def backbone(width: int, seed: int) -> ResNet:
    seed_everything(seed)
    return ResNet(BasicBlock, [1, 1, 1, 1], width=width, small_stem=True)


def knn_top1(model: torch.nn.Module, data: dict, k: int) -> float:
    dev = torch.device("cpu")
    tr = extract_features(model, data["train_images"], np.arange(len(data["train_images"])), dev)
    te = extract_features(model, data["test_images"], np.arange(len(data["test_images"])), dev)
    scores = knn_scores(tr, data["train_labels"], te, k, 0.07, 10)
    return float((scores.argmax(1) == data["test_labels"]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--budget-minutes", type=float, default=15.0)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    npz = np.load(args.data)
    data = {k: npz[k] for k in ("train_images", "train_labels", "test_images", "test_labels")}
    n = len(data["train_images"])
    cpu = torch.device("cpu")
    rand = {k: knn_top1(backbone(args.width, args.seed), data, k) for k in (20, 200)}
    print(
        f"random init  kNN top-1: k=20 {100 * rand[20]:.1f}  k=200 {100 * rand[200]:.1f}",
        flush=True,
    )
    rows = []
    for name in args.methods:
        cfg, lr = METHODS[name]
        method = build_method(
            cfg,
            backbone(args.width, args.seed),
            num_classes=10,
            class_counts=np.bincount(data["train_labels"]),
            train_size=n,
        )
        batches = ArrayBatches(
            data["train_images"], data["train_labels"], np.arange(n), args.batch_size, cpu
        )
        # calibrate: one short epoch of 10 steps gives images/s for this method
        calib = ArrayBatches(
            data["train_images"],
            data["train_labels"],
            np.arange(10 * args.batch_size),
            args.batch_size,
            cpu,
        )
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            fit(
                build_method(
                    cfg,
                    backbone(args.width, args.seed),
                    num_classes=10,
                    class_counts=np.bincount(data["train_labels"]),
                    train_size=n,
                ),
                calib,
                TrainConfig(epochs=1, batch_size=args.batch_size, optimizer=OptimizerConfig(lr=lr)),
                Path(tmp),
                seed=0,
            )
            per_epoch = (time.perf_counter() - t0) * n / (10 * args.batch_size)
        epochs = max(1, int(args.budget_minutes * 60 / per_epoch))
        train = TrainConfig(
            epochs=epochs,
            batch_size=args.batch_size,
            warmup_epochs=min(2, epochs / 5),
            checkpoint_every=10_000,
            log_every=50,
            optimizer=OptimizerConfig(lr=lr, weight_decay=5e-4),
        )
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            result = fit(method, batches, train, Path(tmp), seed=args.seed, desc=name)
            seconds = time.perf_counter() - t0
        acc = {k: knn_top1(method.backbone, data, k) for k in (20, 200)}
        row = (name, epochs, seconds, n * epochs / seconds, acc, result.final_collapse_ratio)
        rows.append(row)
        print(
            f"{name:8s} {epochs:3d} epochs in {seconds / 60:.1f} min ({row[3]:.0f} img/s)  "
            f"kNN top-1 k=20 {100 * acc[20]:.1f} (+{100 * (acc[20] - rand[20]):.1f})  "
            f"k=200 {100 * acc[200]:.1f} (+{100 * (acc[200] - rand[200]):.1f})  "
            f"collapse ratio {row[5]:.2f}",
            flush=True,
        )
    print("\nmethod   epochs  minutes  img/s   kNN@20  vs random  ratio")
    for name, epochs, seconds, ips, acc, _ in rows:
        print(
            f"{name:8s} {epochs:6d} {seconds / 60:8.1f} {ips:6.0f} {100 * acc[20]:7.1f} "
            f"{100 * (acc[20] - rand[20]):+9.1f} {acc[20] / rand[20]:6.2f}x"
        )


if __name__ == "__main__":
    main()

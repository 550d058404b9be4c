"""Is SDCLR's pruned branch forgetful or simply broken at a CPU width? Linear-probe accuracy of
the dense network's features against the pruned branch's own, after the same SDCLR training,
with the random-init floor of each beside them.

SDCLR (Jiang et al., ICML 2021) prunes 90% of a ResNet-18's ~11 M weights on CIFAR; our CPU
configs train a width-16 `resnet_tiny`, where the same ratio leaves a few thousand weights in
most layers. The pruned branch is meant to forget the rare classes first, not to be near the
floor: if its probe is near random init, the contrast it gives SimCLR is against noise.

    python benchmarks/sdclr_pruned.py --arch resnet_tiny --width 16 --epochs 30
    python benchmarks/sdclr_pruned.py --arch resnet18 --epochs 3
    python benchmarks/sdclr_pruned.py --arch resnet_tiny --ratios 0.9 0.7 0.5  # one run each
    python benchmarks/sdclr_pruned.py --checkpoint \
        RUN/representations/sdclr_balanced_s0-*/train/checkpoint.pt  # a study's trained SDCLR

Data: `../shared/data/cifar10_subset.npz` (real CIFAR-10 at 32 px): SDCLR trains on a balanced
draw of `--n` training images; the probe trains on 200 other images per class, picks its L2 on
50 more per class, and is scored on the 2,000 test images (200 per class, so top-1 is balanced
accuracy; `--probe-per-class` and `--test` make it smaller). Both branches are probed in eval
mode (each with its own batch-norm statistics). `--checkpoint` probes a study's trained SDCLR
(its `train/checkpoint.pt`, with the backbone flags of its config) instead of training one; its
training images may then overlap the probe's, alike for both branches.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ssl_robustness.config import BackboneConfig, OptimizerConfig, SDCLRConfig, TrainConfig
from ssl_robustness.engine.batches import ArrayBatches
from ssl_robustness.engine.checkpoint import load_checkpoint
from ssl_robustness.engine.loop import fit
from ssl_robustness.evaluation.features import extract_features
from ssl_robustness.evaluation.linear_probe import linear_probe
from ssl_robustness.methods import build_method
from ssl_robustness.methods.sdclr import SDCLR, prunable_weights
from ssl_robustness.models.backbones import build_backbone

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_subset.npz"
CPU = torch.device("cpu")
L2_GRID = [1e-4, 1e-3, 1e-2]


def per_class(labels: np.ndarray, counts: list[int], seed: int) -> list[np.ndarray]:
    """Disjoint index sets, `counts[j]` images of each class in the j-th, drawn by `seed`."""
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in counts]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for j, k in enumerate(counts):
            out[j] += idx[start : start + k].tolist()
            start += k
    return [np.array(sorted(x)) for x in out]


def probe_accuracy(backbone: torch.nn.Module, data: dict, splits: dict) -> float:
    """Test top-1 of a linear probe on `backbone`'s frozen features (L2 chosen on val)."""
    feats = {}
    for name, (images, idx) in splits.items():
        feats[name] = extract_features(backbone, images, idx, CPU)
    labels = {name: data[name][idx] for name, (_, idx) in splits.items()}
    model, _ = linear_probe(
        feats["probe"], labels["probe"], feats["val"], labels["val"], 10, L2_GRID
    )
    pred = model.scores(feats["test"]).argmax(1)
    return float((pred == labels["test"]).mean())


def sdclr(arch: str, width: int, ratio: float, n: int) -> SDCLR:
    if arch == "resnet_tiny":
        cfg = BackboneConfig(name=arch, width=width, layers=[1, 1, 1, 1])
    else:
        cfg = BackboneConfig(name=arch)
    method = build_method(
        SDCLRConfig(prune_ratio=ratio),
        build_backbone(cfg, 32),
        num_classes=10,
        class_counts=np.full(10, n // 10),
        train_size=n,
    )
    assert isinstance(method, SDCLR)
    return method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet_tiny", choices=["resnet_tiny", "resnet18"])
    parser.add_argument("--width", type=int, default=16, help="resnet_tiny's width")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--n", type=int, default=2000, help="SDCLR's training images")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.9])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-per-class", type=int, default=200)
    parser.add_argument("--test", type=int, default=2000, help="test images, balanced")
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained SDCLR's")
    args = parser.parse_args()

    npz = np.load(DATA)
    data = {"train": npz["train_labels"], "test": npz["test_labels"]}
    counts = [args.n // 10, args.probe_per_class, max(10, args.probe_per_class // 4)]
    train_idx, probe_idx, val_idx = per_class(data["train"], counts, args.seed)
    (test_idx,) = per_class(data["test"], [args.test // 10], args.seed)
    data.update(probe=data["train"], val=data["train"])
    images = npz["train_images"]
    splits = {
        "probe": (images, probe_idx),
        "val": (images, val_idx),
        "test": (npz["test_images"], test_idx),
    }
    label = f"{args.arch}" + (f" width {args.width}" if args.arch == "resnet_tiny" else "")
    trained = (
        f"the SDCLR of {args.checkpoint}"
        if args.checkpoint is not None
        else f"SDCLR {args.epochs} epochs on {len(train_idx)} balanced CIFAR-10 images"
    )
    print(
        f"{label}, {trained}, batch {args.batch}, {torch.get_num_threads()} threads; linear "
        f"probe ({len(probe_idx)} images, {len(test_idx)} test) top-1 (%)"
    )
    print("ratio  weights  kept     floor dense  floor pruned  dense  pruned  pruned-floor  s")
    for ratio in args.ratios:
        start = time.perf_counter()
        torch.manual_seed(args.seed)
        method = sdclr(args.arch, args.width, ratio, len(train_idx))
        total = sum(w.numel() for w in prunable_weights(method.backbone).values())
        kept = int(sum(float(m.sum()) for m in method.masks().values()))
        floor_dense = probe_accuracy(method.backbone, data, splits)
        floor_pruned = probe_accuracy(method.pruned_backbone(), data, splits)
        if args.checkpoint is not None:
            method.load_state_dict(load_checkpoint(args.checkpoint)["model"])
        else:
            train = TrainConfig(
                epochs=args.epochs,
                batch_size=args.batch,
                optimizer=OptimizerConfig(lr=0.06, momentum=0.9, weight_decay=5e-4),
                warmup_epochs=min(2, args.epochs - 1),
                checkpoint_every=args.epochs,
            )
            batches = ArrayBatches(images, data["train"], train_idx, args.batch, CPU)
            with tempfile.TemporaryDirectory() as run_dir:
                fit(method, batches, train, Path(run_dir), seed=args.seed, desc=f"sdclr {ratio}")
        method.prune()  # the mask of the trained weights, as the next epoch would use
        dense = probe_accuracy(method.backbone, data, splits)
        pruned = probe_accuracy(method.pruned_backbone(), data, splits)
        print(
            f"{ratio:<5g}  {total:>8,}  {kept:>7,}  {100 * floor_dense:10.1f}  "
            f"{100 * floor_pruned:12.1f}  {100 * dense:5.1f}  {100 * pruned:6.1f}  "
            f"{100 * (pruned - floor_dense):+12.1f}  {time.perf_counter() - start:.0f}"
        )


if __name__ == "__main__":
    main()

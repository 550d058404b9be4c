"""Linear probe speed and accuracy: our full-batch L-BFGS (warm-started along the L2 grid)
against scikit-learn's LogisticRegression(lbfgs), same features, same grid, same val split.

    python benchmarks/linear_probe.py                       # 50k x 2048, 100 classes
    python benchmarks/linear_probe.py --n 10000 --dim 512   # smaller
    python benchmarks/linear_probe.py --sgd-epoch           # also one augmented-SGD epoch

Features are synthetic but shaped like pooled ResNet-50 features (non-negative, correlated,
class signal in a low-dimensional subspace), so the problem is neither trivial nor hopeless.
Both sides standardise with the training statistics and choose C (l2 = 1 / (C n)) by
validation accuracy. Prints wall times, accuracies and the speed ratio.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from ssl_robustness.evaluation.linear_probe import linear_probe


def make_features(
    n: int, dim: int, classes: int, separation: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rank = min(64, dim)
    basis = rng.normal(size=(rank, dim)) / np.sqrt(rank)
    centers = rng.normal(size=(classes, rank)) * separation
    y = rng.integers(0, classes, n)
    latent = centers[y] + rng.normal(size=(n, rank))
    x = np.maximum(latent @ basis + 0.5 * rng.normal(size=(n, dim)), 0)  # ReLU-like
    return x.astype(np.float32), y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--grid", type=float, nargs="+", default=[0.01, 0.1, 1.0], help="C values")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sgd-epoch", action="store_true")
    ap.add_argument("--separation", type=float, default=0.45, help="class-mean scale")
    args = ap.parse_args()
    n_val = n_test = max(1000, args.n // 10)
    x, y = make_features(args.n + n_val + n_test, args.dim, args.classes, args.separation)
    xtr, ytr = x[: args.n], y[: args.n]
    xva, yva = x[args.n : args.n + n_val], y[args.n : args.n + n_val]
    xte, yte = x[args.n + n_val :], y[args.n + n_val :]
    print(
        f"features: train {xtr.shape}, val {len(xva)}, test {len(xte)}, {args.classes} classes; "
        f"grid C={args.grid}; torch threads {torch.get_num_threads()}; device {args.device}"
    )

    t0 = time.perf_counter()
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    ztr, zva, zte = (xtr - mean) / std, (xva - mean) / std, (xte - mean) / std
    best, best_val, sk_fits = None, -1.0, []
    for c in args.grid:
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(C=c, max_iter=300).fit(ztr, ytr)
        sk_fits.append((c, time.perf_counter() - t, clf.n_iter_[0]))
        val = clf.score(zva, yva)
        if val > best_val:
            best, best_val = clf, val
    sk_time = time.perf_counter() - t0
    sk_acc = best.score(zte, yte)

    if args.device != "cpu":  # warm up the device so start-up is not billed to the probe
        linear_probe(
            xtr[:512], ytr[:512], xva[:64], yva[:64], args.classes, [1e-3], device=args.device
        )
    t0 = time.perf_counter()
    model, curve = linear_probe(
        xtr,
        ytr,
        xva,
        yva,
        args.classes,
        [1.0 / (c * args.n) for c in args.grid],
        max_iter=300,
        device=args.device,
    )
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    ours_time = time.perf_counter() - t0
    ours_acc = float((model.scores(xte).argmax(1) == yte).mean())

    for c, seconds, iters in sk_fits:
        print(f"  scikit-learn C={c:g}: {seconds:.1f} s, {iters} iterations")
    print(f"scikit-learn lbfgs : {sk_time:7.1f} s  test top-1 {100 * sk_acc:.2f}%  (C={best.C:g})")
    print(
        f"ours (torch L-BFGS): {ours_time:7.1f} s  test top-1 {100 * ours_acc:.2f}%  "
        f"(C={1 / (model.l2 * args.n):g})"
    )
    print(
        f"speed ratio (scikit-learn / ours): {sk_time / ours_time:.2f}x; accuracy difference "
        f"{100 * (ours_acc - sk_acc):+.2f} points"
    )

    if args.sgd_epoch:
        sgd_epoch_time(args.device)


def sgd_epoch_time(device: str) -> None:
    """One epoch of the literature's probe: 50k augmented 32 px images through a frozen
    ResNet-50 and a linear head, for contrast with the full-batch probe on cached features."""
    from ssl_robustness.config import BackboneConfig
    from ssl_robustness.methods.augment import augment
    from ssl_robustness.methods.supervised import SUPERVISED_VIEW
    from ssl_robustness.models.backbones import build_backbone

    dev = torch.device(device)
    backbone = build_backbone(BackboneConfig(name="resnet50"), 32).to(dev).eval()
    head = torch.nn.Linear(backbone.feature_dim, 100).to(dev)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    images = torch.randint(0, 255, (256, 32, 32, 3), dtype=torch.uint8, device=dev)
    g = torch.Generator().manual_seed(0)
    steps = 5
    t0 = time.perf_counter()
    for _ in range(steps):
        with torch.no_grad():
            feats = backbone(augment(images, SUPERVISED_VIEW, g))
        loss = torch.nn.functional.cross_entropy(
            head(feats), torch.zeros(256, dtype=torch.long, device=dev)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    per_image = (time.perf_counter() - t0) / (steps * 256)
    print(
        f"augmented-SGD probe, ResNet-50 at 32 px: one 50k-image epoch ~ "
        f"{per_image * 50_000:.0f} s (x100 epochs in the usual protocol)"
    )


if __name__ == "__main__":
    main()

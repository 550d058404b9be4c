"""Does the near-duplicate finder find planted copies, and does it chain? The old finder
(connected components of dHash within 4, 8, 12 bits, copied here as the baseline) against the
new one (`data.listing.near_duplicates.near_sets`), in the same run on the same images.

    python benchmarks/duplicate_finder.py --bases 2000 --chains 40

Images: ../shared/data/cifar10_subset.npz (12,000 real CIFAR-10 images, 32 px) if present,
else scikit-learn's digits upscaled to 32 px. Planted: `--bases` of them get one copy each, of
five kinds in turn (crop 26-30 px and resize back, JPEG q 50-75, shift 1-3 px, brightness/contrast,
hue), all other images are distractors; `--chains` morphs of one image into another in
CHAIN_STEPS frames (each frame near the next, the ends unrelated). Reported per finder:
recall of planted (base, copy) pairs (in one set), per kind; false sets (sets holding images
of two or more planted groups, a distractor counting as a group of its own: real CIFAR
near-duplicates among the distractors count here too); chains merged end to end; the largest
set; seconds.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ssl_robustness.data.listing.near_duplicates import difference_hashes, near_sets

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10_subset.npz"
KINDS = ("crop", "jpeg", "shift", "bright", "hue")
CHAIN_STEPS = 12


def load_images(path: Path) -> tuple[np.ndarray, str]:
    if path.exists():
        d = np.load(path)
        return np.concatenate([d["train_images"], d["test_images"]]), f"CIFAR-10 ({path.name})"
    from sklearn.datasets import load_digits

    grey = [
        Image.fromarray((g * 255 / 16).astype(np.uint8)).resize((32, 32))
        for g in load_digits().images
    ]
    rgb = np.stack([np.asarray(g.convert("RGB")) for g in grey])
    return rgb, "scikit-learn digits (upscaled to 32 px)"


def crop(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(26, 31))
    y, x = rng.integers(0, 33 - side, 2)
    part = Image.fromarray(img[y : y + side, x : x + side])
    return np.asarray(part.resize((32, 32), Image.BILINEAR))


def jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=int(rng.integers(50, 76)))
    return np.asarray(Image.open(buf).convert("RGB"))


def shift(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Moved 1-3 px along each axis (one may be 0), edges repeated."""
    dy, dx = rng.integers(-3, 4, 2)
    if dy == dx == 0:
        dx = 1 + int(rng.integers(0, 3))
    pad = np.pad(img, ((3, 3), (3, 3), (0, 0)), mode="edge")
    return pad[3 - dy : 35 - dy, 3 - dx : 35 - dx]


def bright(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    gain, offset = rng.uniform(0.7, 1.3), rng.uniform(-30, 30)
    return np.clip(img * gain + offset, 0, 255).astype(np.uint8)


def hue(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    hsv = np.asarray(Image.fromarray(img).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + int(rng.integers(15, 60))) % 256
    return np.asarray(Image.fromarray(hsv, "HSV").convert("RGB"))


MAKERS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "crop": crop,
    "jpeg": jpeg,
    "shift": shift,
    "bright": bright,
    "hue": hue,
}


def plant(images: np.ndarray, bases: int, chains: int, seed: int) -> dict:
    """The benchmark set: the images, then the copies, then the chains; with each image's
    group (planted together = same group) and the planted pairs by kind."""
    rng = np.random.default_rng(seed)
    n = len(images)
    picked = rng.permutation(n)
    base_ids, chain_ids = picked[:bases], picked[bases : bases + 2 * chains].reshape(-1, 2)
    group = np.arange(n)
    extra, extra_group, pairs = [], [], {k: [] for k in KINDS}
    for k, b in enumerate(base_ids):  # one copy each, the kinds in turn
        kind = KINDS[k % len(KINDS)]
        pairs[kind].append((int(b), n + len(extra)))
        extra.append(MAKERS[kind](images[b], rng))
        extra_group.append(int(b))
    ends = []
    for a, b in chain_ids:
        start = n + len(extra)
        for t in np.linspace(0, 1, CHAIN_STEPS):
            extra.append(((1 - t) * images[a] + t * images[b]).round().astype(np.uint8))
            extra_group.append(n + 10**6 + int(a))
        ends.append((start, start + CHAIN_STEPS - 1))
    return {
        "images": np.concatenate([images, np.stack(extra)]),
        "group": np.concatenate([group, extra_group]),
        "pairs": pairs,
        "chain_ends": ends,
    }


def old_components(hashes: np.ndarray, threshold: int) -> list[np.ndarray]:
    """The old finder (before issue 31 section 4), copied: connected components of hashes
    within `threshold` bits, by the pigeonhole band search."""
    unique, inverse = np.unique(hashes, return_inverse=True)
    parent = np.arange(len(unique))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return int(x)

    for band in np.array_split(np.arange(64), threshold + 1):
        mask = np.uint64(sum(1 << int(b) for b in band))
        keys = unique & mask
        order = np.argsort(keys, kind="stable")
        cuts = np.flatnonzero(np.diff(keys[order])) + 1
        for members in np.split(order, cuts):
            if len(members) < 2:
                continue
            h = unique[members]
            dist = np.bitwise_count(h[:, None] ^ h[None, :])
            for a, b in zip(*np.nonzero(np.triu(dist <= threshold, k=1)), strict=True):
                ra, rb = find(int(members[a])), find(int(members[b]))
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(int(i)) for i in inverse.ravel()])
    sets: dict[int, list[int]] = {}
    for i, r in enumerate(roots):
        sets.setdefault(int(r), []).append(i)
    return [np.array(v) for v in sorted(sets.values()) if len(v) > 1]


def score(sets: list[np.ndarray], bench: dict) -> dict:
    label = np.full(len(bench["images"]), -1)
    for k, s in enumerate(sets):
        label[s] = k
    together = {
        kind: float(np.mean([label[a] >= 0 and label[a] == label[b] for a, b in p]))
        for kind, p in bench["pairs"].items()
    }
    planted = [pair for p in bench["pairs"].values() for pair in p]
    return {
        "recall": float(np.mean([label[a] >= 0 and label[a] == label[b] for a, b in planted])),
        "by_kind": together,
        "false": sum(len(set(bench["group"][s].tolist())) > 1 for s in sets),
        "chains": sum(label[a] >= 0 and label[a] == label[b] for a, b in bench["chain_ends"]),
        "largest": max((len(s) for s in sets), default=0),
        "sets": len(sets),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--bases", type=int, default=2000)
    ap.add_argument("--chains", type=int, default=40)
    ap.add_argument("--similarity", type=float, nargs="+", default=[0.9, 0.92, 0.95])
    ap.add_argument("--new-threshold", type=int, default=4, help="the new finder's dHash radius")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    images, what = load_images(args.data)
    bench = plant(images, args.bases, args.chains, args.seed)
    n = len(bench["images"])
    print(
        f"{n} images: {len(images)} of {what}, {args.bases} planted copies, "
        f"{args.chains} chains of {CHAIN_STEPS} frames"
    )
    rows = []
    for t in (4, 8, 12):
        t0 = time.perf_counter()
        sets = old_components(difference_hashes(bench["images"]), t)
        rows.append(
            (f"old: dHash components, {t} bits", time.perf_counter() - t0, score(sets, bench))
        )
    for sim in args.similarity:
        t0 = time.perf_counter()
        found = near_sets(bench["images"], args.new_threshold, sim)
        label = f"new: dHash {args.new_threshold} + 8-NN, confirmed >= {sim}, complete linkage"
        rows.append((label, time.perf_counter() - t0, score([s for s, _ in found], bench)))
    print()
    print(
        f"| finder | recall | {' | '.join(KINDS)} | false sets | chains merged end to end "
        f"(of {args.chains}) | largest set | sets | seconds |"
    )
    print("|---" * (8 + len(KINDS)) + "|")
    for name, secs, r in rows:
        kinds = " | ".join(f"{r['by_kind'][k]:.2f}" for k in KINDS)
        print(
            f"| {name} | {r['recall']:.3f} | {kinds} | {r['false']} | {r['chains']} | "
            f"{r['largest']} | {r['sets']} | {secs:.1f} |"
        )
    base = rows[0][1]
    for name, secs, _ in rows[3:]:
        print(f"time, {name} / old at 4 bits: {secs / base:.1f}x")


if __name__ == "__main__":
    main()

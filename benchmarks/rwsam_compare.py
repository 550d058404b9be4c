"""Did SAM or rwSAM help the rare classes? Paired per-seed comparison of a finished rwSAM study.

Reads only the run directory `ssl-robustness run benchmarks/rwsam_cpu.yaml` wrote: the
accuracy of each arm's representation pretrained on the step-imbalanced subset (rare = the
tail group), per seed, and the differences against plain SimSiam paired by seed (the same
subset draw, the same probe and test images), with 95% t-intervals over seeds; and, for the
kde arm, the mean inner-loss weight of the rare and the frequent classes per epoch (do rare
images get larger weights?).

    python benchmarks/rwsam_compare.py runs/rwsam-cpu [--evaluation linear-balanced]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

BASE = "simsiam"
ARMS = ("simsiam", "simsiam-sam", "simsiam-rwsam_kde")
METRICS = ("tail", "head", "top1")


def paired(diff: np.ndarray) -> tuple[float, float, float]:
    """Mean of the per-seed differences and its 95% t-interval (nan without two seeds)."""
    mean = float(np.mean(diff))
    if len(diff) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(diff) - 1) * stats.sem(diff)
    return mean, mean - half, mean + half


def words(lo: float, hi: float) -> str:
    if np.isnan(lo):
        return "one seed, no interval"
    if lo > 0:
        return "helped"
    if hi < 0:
        return "hurt"
    return "no detectable difference"


def compare(results: pd.DataFrame, evaluation: str, subset: str) -> list[str]:
    rows = results[(results["evaluation"] == evaluation) & (results["subset"] == subset)]
    wide = rows.pivot_table(index="seed", columns="method", values=list(METRICS))
    lines = [f"{evaluation}, pretrained on {subset} (accuracy in %, per seed):"]
    for metric in METRICS:
        cells = "  ".join(
            f"{arm} {' / '.join(f'{100 * v:.1f}' for v in wide[(metric, arm)])}"
            for arm in ARMS
            if (metric, arm) in wide
        )
        lines.append(f"  {metric:5s} {cells}")
    lines.append("  paired difference against simsiam, points, mean [95% CI] over seeds:")
    for arm in ARMS[1:]:
        if (METRICS[0], arm) not in wide:
            continue
        for metric in METRICS:
            diff = 100 * (wide[(metric, arm)] - wide[(metric, BASE)]).to_numpy()
            mean, lo, hi = paired(diff)
            lines.append(
                f"    {arm:18s} {metric:5s} {mean:+5.1f} [{lo:+5.1f}, {hi:+5.1f}]  {words(lo, hi)}"
            )
    return lines


def weight_lines(run: Path, subset: str) -> list[str]:
    """Mean kde weight of the rare and the frequent classes, per epoch, per seed."""
    groups = json.loads((run / "data" / "stats.json").read_text())["groups"]["per_class"]
    lines = ["rwSAM(kde) inner-loss weights (mean 1 per batch), rare / frequent classes:"]
    for rep in sorted((run / "representations").glob(f"simsiam-rwsam_kde_{subset}_s*")):
        log = rep / "train" / "sam_weights.json"
        if not log.is_file():
            continue
        per_epoch = []
        for row in json.loads(log.read_text()):
            by_group: dict[str, list[float]] = {}
            for label, w in row["per_class"].items():
                by_group.setdefault(groups[int(label)], []).extend([w["mean"]] * w["n"])
            rare, frequent = (
                np.mean(by_group.get("tail", [np.nan])),
                np.mean(by_group.get("head", [np.nan])),
            )
            per_epoch.append(f"{rare:.2f}/{frequent:.2f}")
        lines.append(f"  {rep.name.rsplit('-', 1)[0]}: epochs {' '.join(per_epoch)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--evaluation", nargs="*", default=["linear-balanced", "knn-k200"])
    parser.add_argument("--subset", default="step-r0.1")
    args = parser.parse_args()
    results = pd.read_csv(args.run_dir / "tables" / "results.csv")
    floor = results[(results["method"] == "random-init")]
    for evaluation in args.evaluation:
        print("\n".join(compare(results, evaluation, args.subset)))
        f = floor[floor["evaluation"] == evaluation]
        if not f.empty:
            print(
                f"  random-init floor: tail {100 * f['tail'].mean():.1f}, "
                f"top1 {100 * f['top1'].mean():.1f} (mean over seeds)"
            )
        print()
    print("\n".join(weight_lines(args.run_dir, args.subset)))


if __name__ == "__main__":
    main()

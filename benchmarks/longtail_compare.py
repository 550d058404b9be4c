"""Did the long-tail SSL methods close SimCLR's gap? Each method's absolute gap paired by seed with
SimCLR's (the gap in points, not the relative Δ of the verdict).

Reads only the run directory a study such as `configs/cifar10_longtail_ssl_cpu.yaml` wrote
(`tables/gap_runs.csv`): per evaluation, each method's gap (balanced arm minus imbalanced arm,
in points) per seed, then its difference from SimCLR's gap of the same seed (the same subset
draws, probe and test images) with a 95% t-interval over seeds and its paired p (unadjusted:
exploratory, one test of several). A negative difference: the method lost less than SimCLR.

    python benchmarks/longtail_compare.py runs/cifar10-longtail-ssl-cpu \
        [--evaluation linear-balanced knn-k200] [--metric balanced_accuracy]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from ssl_robustness.report.paired import paired_p, t_interval

BASE = "simclr"


def words(lo: float, hi: float) -> str:
    if np.isnan(lo):
        return "fewer than 2 seeds: no interval"
    if hi < 0:
        return "loses less than simclr"
    if lo > 0:
        return "loses more than simclr"
    return "no detectable difference from simclr"


def compare(gaps: pd.DataFrame, evaluation: str, metric: str) -> list[str]:
    rows = gaps[(gaps["evaluation"] == evaluation) & (gaps["comparison"] == "pretraining")]
    if rows.empty:
        return [f"{evaluation}: no pretraining gaps in this run"]
    wide = rows.pivot_table(index="seed", columns="method", values=f"{metric}_gap") * 100
    arms = rows.pivot_table(index="seed", columns="method", values=f"{metric}_balanced_arm")
    lines = [f"{evaluation}, {metric}: gap = balanced arm - imbalanced arm, points, per seed"]
    for method in wide.columns:
        per_seed = " ".join(f"{v:+.1f}" for v in wide[method])
        mean_arm = 100 * float(arms[method].mean())
        lines.append(f"  {method:16s} gap {per_seed}  (balanced arm {mean_arm:.1f} on average)")
    if BASE not in wide:
        return [*lines, f"  no {BASE} in this run: nothing to pair with"]
    lines.append(f"  gap minus {BASE}'s gap, paired by seed: mean [95% CI], unadjusted p")
    for method in wide.columns:
        if method == BASE:
            continue
        both = wide[[method, BASE]].dropna()
        d = (both[method] - both[BASE]).to_numpy()
        mean, lo, hi = t_interval(d)
        p = paired_p(d) if len(d) >= 2 else float("nan")
        lines.append(
            f"    {method:16s} {mean:+5.1f} [{lo:+5.1f}, {hi:+5.1f}]  p {p:.3f}, "
            f"{len(d)} seeds: {words(lo, hi)}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--evaluation", nargs="*", default=["linear-balanced", "knn-k200"])
    parser.add_argument("--metric", default="balanced_accuracy")
    args = parser.parse_args()
    gaps = pd.read_csv(args.run_dir / "tables" / "gap_runs.csv")
    for evaluation in args.evaluation:
        print("\n".join(compare(gaps, evaluation, args.metric)))
        print()


if __name__ == "__main__":
    main()

"""The report's figures, each a function from tables to a matplotlib Figure."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

GROUP_COLORS = {"head": "#1f77b4", "medium": "#ff7f0e", "tail": "#d62728"}


def class_counts_figure(
    class_names: list[str], counts: np.ndarray, groups: np.ndarray, title: str
) -> Figure:
    """Training images per class, sorted, log scale, coloured by head/medium/tail."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    fig, ax = plt.subplots(figsize=(max(6, min(0.25 * len(order) + 2, 16)), 3.6))
    colors = [GROUP_COLORS.get(str(groups[i]), "grey") for i in order]
    ax.bar(range(len(order)), np.asarray(counts)[order], color=colors)
    ax.set_yscale("log")
    ax.set_ylabel("training images")
    ax.set_title(title)
    if len(order) <= 40:
        ax.set_xticks(range(len(order)), [class_names[i] for i in order], rotation=90, fontsize=7)
    else:
        ax.set_xlabel("classes, sorted by count")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in GROUP_COLORS.values()]
    ax.legend(handles, list(GROUP_COLORS), loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def gap_figure(gaps: pd.DataFrame, evaluation: str, metric: str = "top1") -> Figure:
    """Absolute and relative balanced-vs-imbalanced gap per method, error bars over seeds."""
    g = gaps[gaps["evaluation"] == evaluation]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, kind, label in (
        (axes[0], "gap", "A(n,1) - A(n,r)  [points]"),
        (axes[1], "rel_gap", "relative gap Δ"),
    ):
        labels = [f"{r.method}\n{r.subset}" for r in g.itertuples()]
        scale = 100.0 if kind == "gap" else 1.0
        vals = g[f"{metric}_{kind}_mean"].to_numpy() * scale
        err = np.nan_to_num(g[f"{metric}_{kind}_std"].to_numpy() * scale)
        colors = ["#7f7f7f" if s == "SL" else "#2ca02c" for s in g["scenario"]]
        ax.bar(range(len(g)), vals, yerr=err, color=colors, capsize=3)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(g)), labels, fontsize=7)
        ax.set_ylabel(label)
    axes[0].set_title(f"{evaluation}: loss from imbalance ({metric}; grey SL, green SSL)")
    fig.tight_layout()
    return fig


def group_bars_figure(aggregate: pd.DataFrame, evaluation: str) -> Figure:
    """Overall / head / medium / tail accuracy per method and subset."""
    a = aggregate[aggregate["evaluation"] == evaluation]
    metrics = ["top1", "head", "medium", "tail"]
    fig, ax = plt.subplots(figsize=(max(7, 0.9 * len(a) + 3), 3.8))
    width = 0.8 / len(metrics)
    for j, m in enumerate(metrics):
        ax.bar(
            np.arange(len(a)) + j * width,
            a[f"{m}_mean"] * 100,
            width,
            yerr=np.nan_to_num(a[f"{m}_std"] * 100),
            label=m,
            capsize=2,
        )
    ax.set_xticks(
        np.arange(len(a)) + 0.4 - width / 2,
        [f"{r.method}\n{r.subset}" for r in a.itertuples()],
        fontsize=7,
    )
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{evaluation}: overall / head / medium / tail")
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    return fig


def per_class_figure(per_class: pd.DataFrame, evaluation: str, subset: str) -> Figure:
    """Per-class accuracy against training count (log x), one series per method."""
    pc = per_class[(per_class["evaluation"] == evaluation) & (per_class["subset"] == subset)]
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, grp in pc.groupby("method", sort=False):
        mean = grp.groupby("class", sort=False).agg(
            count=("train_count", "first"), acc=("accuracy", "mean")
        )
        mean = mean.sort_values("count")
        ax.plot(mean["count"], mean["acc"] * 100, "o-", ms=3, label=str(method), alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(f"training images of the class in {subset}")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{evaluation}: which classes pay for the imbalance")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig

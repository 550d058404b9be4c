"""t-SNE of test-set features, coloured by class and by head/medium/tail group."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.manifold import TSNE

from .plots import GROUP_COLORS, plt


def embed(features: np.ndarray, seed: int = 0) -> np.ndarray:
    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    return TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=seed, learning_rate="auto"
    ).fit_transform(features.astype(np.float32))


def subsample(n: int, max_points: int, seed: int = 0) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def tsne_figure(
    features: np.ndarray,
    labels: np.ndarray,
    class_groups: np.ndarray,
    title: str,
    max_points: int = 2000,
) -> Figure:
    idx = subsample(len(features), max_points)
    xy = embed(features[idx])
    lab = labels[idx]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    axes[0].scatter(xy[:, 0], xy[:, 1], c=lab, cmap="tab20" if lab.max() >= 10 else "tab10", s=4)
    axes[0].set_title("by class", fontsize=9)
    groups = np.asarray(class_groups)[lab]
    for g, color in GROUP_COLORS.items():
        m = groups == g
        axes[1].scatter(xy[m, 0], xy[m, 1], c=color, s=4, label=g)
    axes[1].legend(fontsize=7, markerscale=3)
    axes[1].set_title("by group", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig

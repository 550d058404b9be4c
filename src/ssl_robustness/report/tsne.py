"""t-SNE maps of test-set features (openTSNE, seeded): one figure per method, its arms
(balanced and imbalanced representation of the same seed) side by side, always with a legend.

Up to len(CLASS_COLORS) classes a row colours by class; with more (natural data) and the
classes' training counts, the class row colours len(CLASS_COLORS) classes spread from the
rarest to the most frequent, the others grey; every figure has a row coloured by
head/medium/tail tier (the report's tier colours)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .plots import CLASS_COLORS, TIER_COLORS, plt


def embed(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-d openTSNE embedding; one thread and a fixed seed, so a rebuilt report is the same."""
    from openTSNE import TSNE  # imported here: only a report with t-SNE on pays for it

    n = len(features)
    perplexity = float(min(30, max(2, (n - 1) // 3)))
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        initialization="pca",
        random_state=seed,
        n_jobs=1,
        negative_gradient_method="bh" if n < 1000 else "fft",
        verbose=False,
    )
    return np.asarray(tsne.fit(np.asarray(features, dtype=np.float64)))


def subsample(n: int, max_points: int, seed: int = 0) -> np.ndarray:
    """At most `max_points` positions in a seeded random order: test images are listed class
    by class, and points drawn in that order would paint the last classes over the first."""
    return np.random.default_rng(seed).permutation(n)[:max_points]


def colour_rows(num_classes: int) -> list[str]:
    """Which colourings a map gets: by class only while every class has its own colour."""
    return (["class"] if num_classes <= len(CLASS_COLORS) else []) + ["tier"]


OTHER_CLASSES = "#d3d3d3"  # the classes a many-class map leaves uncoloured


def shown_classes(counts: np.ndarray, k: int = len(CLASS_COLORS)) -> np.ndarray:
    """`k` classes spread evenly over the frequency order, rarest first (ties by class id):
    the rare classes a long-tailed study is about and the frequent ones they are told from.

    >>> shown_classes(np.array([50, 5, 20, 9, 1]), 3).tolist()
    [4, 3, 0]
    """
    order = np.argsort(np.asarray(counts), kind="stable")
    if len(order) <= k:
        return order
    return order[np.unique(np.linspace(0, len(order) - 1, k).round().astype(int))]


def tsne_figure(
    arms: list[tuple[str, np.ndarray]],
    labels: np.ndarray,
    class_tiers: np.ndarray,
    class_names: list[str],
    title: str,
    max_points: int = 2000,
    seed: int = 0,
    class_counts: np.ndarray | None = None,
) -> Figure:
    """One column per (arm name, test features), the same test images in each; with
    `class_counts` (training images per class), more classes than colours get a class row of
    `shown_classes` too."""
    idx = subsample(len(labels), max_points, seed)
    lab = np.asarray(labels)[idx]
    tiers = np.asarray(class_tiers)[lab]
    rows = colour_rows(len(class_names))
    palette = dict(enumerate(CLASS_COLORS[: len(class_names)]))  # class id: its colour
    if "class" not in rows and class_counts is not None:
        chosen = shown_classes(class_counts)
        palette = {int(c): CLASS_COLORS[i] for i, c in enumerate(chosen)}
        rows = ["class", *rows]
    if "class" in rows and len(palette) < len(class_names):  # grey ones first, under the rest
        first = np.argsort([c in palette for c in lab], kind="stable")
        idx, lab, tiers = idx[first], lab[first], tiers[first]
    fig, axes = plt.subplots(
        len(rows), len(arms), figsize=(4.2 * len(arms) + 2.4, 3.9 * len(rows)), squeeze=False
    )
    for j, (arm, features) in enumerate(arms):
        xy = embed(features[idx], seed)
        for i, row in enumerate(rows):
            ax = axes[i, j]
            # one scatter in the shuffled order, so no class is painted over the others
            if row == "class":
                colors = [palette.get(int(c), OTHER_CLASSES) for c in lab]
                # in the palette's order: by class id, or rarest to most frequent as chosen
                keys = {class_names[c]: color for c, color in palette.items() if (lab == c).any()}
                others = len(class_names) - len(palette)
                if others:
                    keys[f"{others} other classes"] = OTHER_CLASSES
            else:
                colors = [TIER_COLORS[t] for t in tiers]
                keys = {t: color for t, color in TIER_COLORS.items() if (tiers == t).any()}
            ax.scatter(*xy.T, s=4, c=colors)
            for name, color in keys.items():
                ax.scatter([], [], s=4, color=color, label=name)
            some = row == "class" and len(palette) < len(class_names)
            which = f" ({len(palette)} of {len(class_names)}, rarest to most frequent)"
            ax.set_title(f"{arm}, by {row}{which if some else ''}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        for i, row in enumerate(rows):
            if j == len(arms) - 1:
                axes[i, j].legend(
                    fontsize=7,
                    markerscale=3,
                    loc="center left",
                    bbox_to_anchor=(1.02, 0.5),
                    ncol=2 if row == "class" and min(len(class_names), len(palette)) > 8 else 1,
                    frameon=False,
                )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig

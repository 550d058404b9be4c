"""The report's figures, each a function from tables to a matplotlib Figure.

Error bars are the tables' 95% t-intervals over seeds (`*_ci95`), the same numbers the text
quotes; head/medium/tail keep one colour in every chart (TIER_COLORS), and so does each method
(`method_palette`, one mapping the report passes to every chart). Legends sit beside the axes,
never on the data, and every figure uses matplotlib's constrained layout so no label is cut."""

from __future__ import annotations

import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..names import RANDOM_INIT, SL, SSL_IMAGENET, SSL_IN_DOMAIN  # noqa: E402

TIER_COLORS = {"head": "#1f77b4", "medium": "#ff7f0e", "tail": "#d62728"}
OVERALL_COLOR = "#4d4d4d"
SCENARIO_COLORS = {
    SL: "#7f7f7f",
    SSL_IN_DOMAIN: "#2ca02c",
    SSL_IMAGENET: "#9467bd",
    RANDOM_INIT: "#c7c7c7",
}
# method colours (gap bars, which-classes-pay points): none of them a tier colour
METHOD_COLORS = ("#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
RANDOM_INIT_COLOR = "#c7c7c7"
_SCENARIO_ORDER = (SL, SSL_IN_DOMAIN, SSL_IMAGENET)
# class colours (t-SNE): tab20 less the tier colours and their light twins, so a class is never
# drawn in a tier's colour; dark ones first, so neighbouring classes are not one hue in two
# shades; above this many classes the maps colour by tier only
_TAB20 = [matplotlib.colors.to_hex(c) for c in plt.get_cmap("tab20").colors]
CLASS_COLORS = tuple(
    c
    for c in _TAB20[0::2] + _TAB20[1::2]
    if c not in {*TIER_COLORS.values(), "#aec7e8", "#ffbb78", "#ff9896"}
)
# class names under the class-count chart up to this many classes (unreadable above)
MAX_NAMED_CLASSES = 60
METRIC_LABELS = {"top1": "top-1", "balanced_accuracy": "balanced accuracy"}


def method_palette(pairs) -> dict[tuple[str, str], str]:
    """One colour per (scenario, method), the same in every chart of a report: SL variants
    first, then SSL in-domain, then imported, each in order of first appearance; random init
    always light grey. Past len(METHOD_COLORS) methods colours repeat (the labels tell)."""
    pairs = [(str(s), str(m)) for s, m in dict.fromkeys(pairs)]
    rank = {s: i for i, s in enumerate(_SCENARIO_ORDER)}
    ordered = sorted(
        (p for p in pairs if p[0] != RANDOM_INIT),
        key=lambda p: rank.get(p[0], len(rank)),
    )
    out = {p: METHOD_COLORS[i % len(METHOD_COLORS)] for i, p in enumerate(ordered)}
    return out | {p: RANDOM_INIT_COLOR for p in pairs if p[0] == RANDOM_INIT}


def _palette(df: pd.DataFrame, colors: dict[tuple[str, str], str] | None) -> dict:
    """The report's palette, else one from this table's own methods (notebook use)."""
    own = method_palette(zip(df["scenario"], df["method"], strict=True))
    return own | (colors or {})


def class_counts_figure(
    class_names: list[str], counts: np.ndarray, tiers: np.ndarray, title: str
) -> Figure:
    """Training images per class, sorted, log scale, coloured by head/medium/tail."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    named = len(order) <= MAX_NAMED_CLASSES
    width = max(6.0, min(0.22 * len(order) + 2, 16.0))
    fig, ax = plt.subplots(figsize=(width, 4.6 if named else 3.6), layout="constrained")
    colors = [TIER_COLORS.get(str(tiers[i]), "grey") for i in order]
    ax.bar(range(len(order)), np.asarray(counts)[order], color=colors)
    ax.set_yscale("log")
    _plain_log_ticks(ax, np.asarray(counts, dtype=float)[np.asarray(counts) > 0], "y")
    ax.set_ylabel("training images")
    ax.set_title(title)
    if named:
        labels = [_short(class_names[i]) for i in order]
        ax.set_xticks(range(len(order)), labels, rotation=90, fontsize=7 if len(order) <= 40 else 6)
        ax.set_xlim(-0.7, len(order) - 0.3)
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(order)} classes, sorted by count (names in the per-class table below)")
    _tier_legend(ax)
    return fig


def _short(name: str, width: int = 18) -> str:
    """A class name cut to fit under a bar."""
    name = str(name)
    return name if len(name) <= width else name[: width - 1] + "…"


def _tier_legend(ax: plt.Axes) -> None:
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in TIER_COLORS.values()]
    ax.legend(handles, list(TIER_COLORS), fontsize=8, **BESIDE)


# a legend beside the axes' top right corner: off the data, below the title
BESIDE = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "frameon": False}


def _select(df: pd.DataFrame, evaluation: str, comparison: str | None) -> pd.DataFrame:
    out = df[df["evaluation"] == evaluation]
    if comparison is not None and "comparison" in out:
        out = out[out["comparison"] == comparison]
    return out


def _label(method: str, subset: str) -> str:
    """A bar's tick label, long method names wrapped so neighbours do not overlap."""
    return textwrap.fill(str(method).replace("_", "_ "), 16).replace("_ ", "_") + f"\n{subset}"


def _ci(df: pd.DataFrame, column: str, scale: float) -> np.ndarray:
    """Half-widths of the 95% t-intervals; 0 (no bar) where one seed gives none."""
    if column not in df:
        return np.zeros(len(df))
    return np.nan_to_num(df[column].to_numpy(dtype=float) * scale)


def gap_figure(
    gaps: pd.DataFrame,
    evaluation: str,
    metric: str = "top1",
    comparison: str | None = None,
    colors: dict[tuple[str, str], str] | None = None,
) -> Figure:
    """Absolute and relative balanced-vs-imbalanced gap per method, 95% t-interval bars; each
    bar in its method's colour (`colors`, the report's palette), named under the bar."""
    g = _select(gaps, evaluation, comparison)
    palette = _palette(g, colors)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    labels = [
        _label(r.method, r.subset) + ("\n(1 seed)" if int(r.seeds) < 2 else "")
        for r in g.itertuples()
    ]
    bar_colors = [
        palette[(str(s), str(m))] for s, m in zip(g["scenario"], g["method"], strict=True)
    ]
    for ax, kind, label in (
        (axes[0], "gap", "A(n,1) - A(n,r)  [points]"),
        (axes[1], "rel_gap", "relative gap Δ  [%]"),
    ):
        vals = g[f"{metric}_{kind}_mean"].to_numpy(dtype=float) * 100
        ax.bar(
            range(len(g)),
            vals,
            yerr=_ci(g, f"{metric}_{kind}_ci95", 100),
            color=bar_colors,
            capsize=3,
        )
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(range(len(g)), labels, fontsize=7)
        ax.set_ylabel(label)
    kind = f", {comparison}" if comparison else ""
    fig.suptitle(
        f"{evaluation}{kind}: loss from imbalance in {METRIC_LABELS.get(metric, metric)} "
        "(bars: 95% t-interval over seeds; colour: method)",
        fontsize=10,
    )
    return fig


ACCURACY_LIMITS = (0.0, 100.0)  # the accuracy axis; intervals are clipped to it


def clipped_errors(mean: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, int]:
    """(2, n) error bar lengths of mean ± half clipped to ACCURACY_LIMITS, and how many bars
    reached past them: a 2-seed interval can span more than 0..100% of accuracy."""
    low, high = ACCURACY_LIMITS
    below = np.clip(np.minimum(half, mean - low), 0, None)
    above = np.clip(np.minimum(half, high - mean), 0, None)
    clipped = int(((mean - half < low) | (mean + half > high)).sum())
    return np.vstack([below, above]), clipped


def tier_bars_figure(
    aggregate: pd.DataFrame, evaluation: str, metric: str = "top1", comparison: str | None = None
) -> Figure:
    """Overall / head / medium / tail accuracy per method and subset, 95% t-interval bars
    clipped at 0 and 100% (the title says how many were)."""
    a = _select(aggregate, evaluation, comparison)
    series = [(metric, OVERALL_COLOR)] + list(TIER_COLORS.items())
    fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(a) + 4), 4.2), layout="constrained")
    width = 0.8 / len(series)
    clipped = 0
    for j, (m, color) in enumerate(series):
        mean = a[f"{m}_mean"].to_numpy(dtype=float) * 100
        err, k = clipped_errors(mean, _ci(a, f"{m}_ci95", 100))
        clipped += k
        ax.bar(
            np.arange(len(a)) + j * width,
            mean,
            width,
            yerr=err,
            label=METRIC_LABELS.get(m, m),
            color=color,
            capsize=2,
        )
    ax.set_xticks(
        np.arange(len(a)) + 0.4 - width / 2,
        [_label(r.method, r.subset) for r in a.itertuples()],
        fontsize=7,
    )
    ax.set_ylim(*ACCURACY_LIMITS)
    ax.set_ylabel("accuracy (%)")
    note = (
        f"; {clipped} interval{'s' if clipped != 1 else ''} clipped at 0 or 100%" if clipped else ""
    )
    ax.set_title(
        f"{evaluation}: overall / head / medium / tail\n(bars: 95% t-interval over seeds{note})",
        fontsize=10,
    )
    ax.legend(fontsize=8, **BESIDE)
    return fig


def class_gaps(
    per_class: pd.DataFrame,
    evaluation: str,
    subset: str,
    balanced_subset: str,
    comparison: str | None = None,
) -> pd.DataFrame:
    """Per method and class: A_c(n,1) − A_c(n,r), the balanced arm's accuracy minus the
    imbalanced arm's on the same class, evaluation and seed, then the mean over seeds; with
    the class's training count in D(n,r) and its tier."""
    pc = _select(per_class, evaluation, comparison)
    keys = ["scenario", "method", "seed", "class"]
    bal = pc[pc["subset"] == balanced_subset].set_index(keys)["accuracy"]
    imb = pc[pc["subset"] == subset].set_index(keys)
    both = imb.join(bal.rename("balanced_accuracy"), how="inner")
    both["gap"] = both["balanced_accuracy"] - both["accuracy"]
    out = (
        both.reset_index()
        .groupby(["scenario", "method", "class"], sort=False)
        .agg(
            gap=("gap", "mean"),
            train_count=("train_count", "mean"),
            tier=("tier", "first"),
            seeds=("seed", "nunique"),
        )
        .reset_index()
    )
    return out


def which_classes_pay_figure(
    gaps_by_class: pd.DataFrame,
    evaluation: str,
    subset: str,
    colors: dict[tuple[str, str], str] | None = None,
) -> Figure:
    """Per-class gap against the class's training count in D(n,r): one colour per method
    (`colors`, the report's palette), log x; the ticks along the bottom give each class's
    tier in the tier colours."""
    fig, ax = plt.subplots(figsize=(9.5, 4.4), layout="constrained")
    shown = gaps_by_class[gaps_by_class["train_count"] > 0]
    methods = list(dict.fromkeys(zip(shown["scenario"], shown["method"], strict=True)))
    palette = _palette(shown, colors)
    dodge = _dodge(shown["train_count"].to_numpy(dtype=float), len(methods))
    stacked = False
    for i, (scenario, method) in enumerate(methods):
        m = shown[(shown["scenario"] == scenario) & (shown["method"] == method)]
        # classes at one point (same count and gap: few test images per class) are one
        # marker whose area counts them, beside the other methods' markers, never on them
        pts = (
            m.assign(y=(m["gap"] * 100).round(6))
            .groupby(["train_count", "y"], sort=False)
            .size()
            .reset_index(name="k")
        )
        stacked |= bool((pts["k"] > 1).any())
        ax.scatter(
            pts["train_count"] * 10 ** dodge[i],
            pts["y"],
            s=16 * pts["k"],
            alpha=0.75,
            color=palette[(str(scenario), str(method))],
            label=f"{method} ({scenario})",
        )
    per_class = shown.drop_duplicates("class")
    for tier, color in TIER_COLORS.items():
        x = per_class.loc[per_class["tier"] == tier, "train_count"]
        ax.plot(x, np.zeros(len(x)), "|", ms=12, color=color, transform=ax.get_xaxis_transform())
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xscale("log")
    _plain_log_ticks(ax, shown["train_count"].to_numpy(dtype=float))
    offset = "; methods drawn side by side, slightly off their count" if len(methods) > 1 else ""
    ax.set_xlabel(
        textwrap.fill(
            f"training images of the class in {subset} (ticks at the bottom: head / medium / "
            f"tail{offset})",
            90,
        ),
        fontsize=9,
    )
    ax.set_ylabel("A_c(n,1) - A_c(n,r)  [points]")
    ax.set_title(f"{evaluation}: which classes pay for the imbalance (mean over seeds)")
    legend = ax.legend(
        fontsize=7, title="marker area: classes at that point" if stacked else None, **BESIDE
    )
    legend.get_title().set_fontsize(7)
    for handle in legend.legend_handles:
        handle.set_sizes([16])
    return fig


def _dodge(counts: np.ndarray, methods: int) -> np.ndarray:
    """Each method's horizontal offset in decades: side by side within a fraction of the
    closest two counts, so methods do not cover each other and classes stay apart."""
    levels = np.unique(np.log10(counts[counts > 0]))
    step = float(np.diff(levels).min()) if len(levels) > 1 else 0.1
    width = min(0.6 * step, 0.06)
    return (np.arange(methods) - (methods - 1) / 2) * (width / max(methods, 1))


def _plain_log_ticks(ax: plt.Axes, counts: np.ndarray, axis: str = "x") -> None:
    """Counts as plain numbers on a log axis (4, 10, 20, not 4x10^0); between the decades
    every minor tick is labelled over a short span, only 2s and 5s over a wider one."""
    scale = ax.xaxis if axis == "x" else ax.yaxis
    scale.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    spread = np.log10(counts.max() / counts.min()) if len(counts) and counts.min() > 0 else 9
    keep = range(1, 10) if spread < 0.7 else (2, 5) if spread < 2.5 else ()

    def minor(v: float, _: int) -> str:
        lead = round(v / 10 ** np.floor(np.log10(v))) if v > 0 else 0
        return f"{v:g}" if lead in keep else ""

    scale.set_minor_formatter(matplotlib.ticker.FuncFormatter(minor))

"""The report's figures: drawn from the run's tables, saved as PNG and kept for embedding."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..atomic import write_with
from ..data.subsets.profiles import imbalance_ratio
from ..faults import reached
from ..names import TRAINED_SCENARIOS
from . import verdict as V
from .arms import balanced_twin, comparison_rows, main_subset, per_class_rows, subset_counts
from .plots import (
    class_counts_figure,
    class_gaps,
    gap_figure,
    method_palette,
    plt,
    tier_bars_figure,
    which_classes_pay_figure,
)
from .rundir import RunDir
from .tsne import tsne_figure


@dataclass
class Figures:
    """PNG figures: written under report/figures/ and embedded as base64 in the HTML."""

    directory: Path
    images: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (caption, b64)

    def add(self, name: str, fig: Figure, caption: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        data = buf.getvalue()
        reached("report")  # failpoint: tests kill between two figures (faults.py)
        write_with(self.directory / f"{name}.png", lambda tmp: tmp.write_bytes(data))
        self.images[name] = (caption, base64.b64encode(data).decode())


def draw_figures(
    run: RunDir,
    figures: Figures,
    headline: tuple[str, str] | None,
    metric: str,
    notes: list[str],
) -> None:
    """The class counts, gap, tier and which-classes-pay figures; why one is missing: `notes`."""
    stats, main = run.stats, main_subset(run)
    tiers = stats.get("tiers", {}).get("per_class")
    counts = subset_counts(stats.get("subsets", {}).get(main, {})) if main else []
    if counts and tiers and stats.get("classes"):
        c = np.asarray(counts)
        figures.add(
            "class_counts",
            class_counts_figure(
                stats["classes"],
                c,
                np.asarray(tiers),
                f"{main}: {int(c.sum())} images, ratio {imbalance_ratio(c):.3f}",
            ),
            "training images per class in the main imbalanced subset",
        )
    if headline is None:
        return
    ev, comparison = headline
    gaps, agg = run.tables["gaps"], run.tables["aggregate"]
    palette = _palette(run)
    if not gaps.empty:
        figures.add(
            "gap",
            gap_figure(gaps, ev, metric, comparison if "comparison" in gaps else None, palette),
            f"{ev}, {comparison} gap; each method keeps its colour in every chart",
        )
    if not agg.empty and not comparison_rows(agg, ev, comparison).empty:
        figures.add(
            "tiers",
            tier_bars_figure(agg, ev, metric, comparison if "comparison" in agg else None),
            f"{ev}: accuracy by frequency tier (head/medium/tail); the axis runs from 0 to "
            "100% and intervals reaching past it are clipped there (the title counts them)",
        )
    chosen = per_class_rows(run, ev, comparison)
    if isinstance(chosen, str):
        notes.append(f"which classes pay: {chosen}")
        return
    pc, main, twin, bad = chosen
    by_class = class_gaps(pc, ev, main, twin, comparison if "comparison" in pc else None)
    figures.add(
        "which_classes_pay",
        which_classes_pay_figure(by_class, ev, main, palette),
        f"{ev}: per-class gap against training count in {main}",
    )
    if bad:
        notes.append(
            "which classes pay leaves out collapsed or failed representations: "
            + ", ".join(sorted(bad))
        )


def _palette(run: RunDir) -> dict[tuple[str, str], str]:
    """One colour per method for every chart of this report, from all its results."""
    res = run.results
    if res.empty or "method" not in res:
        return {}
    res = res.dropna(subset=["scenario", "method"])
    return method_palette(zip(res["scenario"], res["method"], strict=True))


def _train_counts(run: RunDir, subset: str | None, seed: int, classes: int) -> np.ndarray | None:
    """Training images per class in `subset` (this seed's draw where recorded: stats.json
    keeps a seed's counts as a plain list), for the t-SNE's class row on many classes; None
    when not recorded."""
    seeded = run.stats.get("seeds", {}).get(str(seed), {}).get("subsets", {}).get(subset)
    if isinstance(seeded, list):
        counts = [int(x) for x in seeded]
    else:
        counts = subset_counts(run.stats.get("subsets", {}).get(subset) or {})
    return np.asarray(counts) if len(counts) == classes else None


def draw_tsne(run: RunDir, figures: Figures, notes: list[str]) -> list[str]:
    """One t-SNE figure per method of the first seed: a trained method's balanced and main
    imbalanced representations side by side, a fixed one (imported, random init) alone; from
    the cached test features."""
    res, labels = run.results, run.test_labels()
    tiers = run.stats.get("tiers", {}).get("per_class")
    if res.empty or "rep_dir" not in res or labels is None or not tiers:
        notes.append("t-SNE: no test manifest, tiers or representation folders recorded.")
        return []
    ok = res[(res["status"] == "ok") & ~V.truthy(res, "collapsed")].dropna(subset=["rep_dir"])
    if ok.empty:
        return []
    seed = ok["seed"].min()
    ok = ok[ok["seed"] == seed]
    # tiers can differ per seed when subsets are drawn per seed: take this seed's
    seeded = run.stats.get("seeds", {}).get(str(int(seed)), {}).get("tiers", {})
    tiers = seeded.get("per_class") or tiers
    names = run.stats.get("classes") or [str(c) for c in range(int(labels.max()) + 1)]
    main = main_subset(run)
    twin = balanced_twin(run, main) if main else None
    trained = ok["scenario"].isin(TRAINED_SCENARIOS)
    pick = ok[~trained | ok["subset"].isin([twin, main])].drop_duplicates("representation")
    limit = int(run.report_setting("tsne_max_points", 2000))
    out = []
    for (scenario, method), reps in pick.groupby(["scenario", "method"], sort=False):
        if scenario in TRAINED_SCENARIOS and main not in set(reps["subset"]):
            continue
        reps = reps.sort_values("subset", key=lambda s: s != twin, kind="stable")
        arms = []
        for r in reps.itertuples():
            feats = run.test_features(str(r.rep_dir))
            if feats is None or len(feats) != len(labels):
                notes.append(f"t-SNE {r.representation}: no test features matching the manifest.")
                continue
            arms.append((str(r.subset) if scenario in TRAINED_SCENARIOS else "fixed", feats))
        if not arms:
            continue
        rep = str(reps["representation"].iloc[-1])
        title = f"{method} ({scenario}), seed {int(seed)}: test features"
        figures.add(
            f"tsne-{rep}",
            tsne_figure(
                arms,
                labels,
                np.asarray(tiers),
                list(names),
                title,
                limit,
                int(seed),
                _train_counts(run, main, int(seed), len(names)),
            ),
            f"t-SNE of {method} ({scenario}), seed {int(seed)}: "
            + " | ".join(name for name, _ in arms),
        )
        out.append(f"tsne-{rep}")
    return out

"""What the report says, as plain values (ReportContent) that both renderings show."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..layout import RunLayout
from . import verdict as V
from . import verdict_words as W
from .arms import per_class_rows, subset_counts
from .classes import class_table, coarseness_line, rare_classes_by_seed, rarity_table
from .cost import cost_rows, cost_summary
from .figures import Figures, draw_figures, draw_tsne
from .group_intervals import GROUP_INTERVALS, group_interval_lines
from .headline import bottom_line_of, headline_choice, undertrained_lines, verdict_block
from .registered import confirmatory_choice
from .rundir import RunDir
from .sentences import (
    TRADEOFF_CAPTION,
    data_lines,
    gap_sentences,
    probe_overlap_table,
    tradeoff_table,
)


@dataclass
class ReportContent:
    """Everything both renderings (HTML and Markdown) show, as plain values."""

    title: str
    metric: str
    metric_reason: str
    headline: tuple[str, str] | None  # (evaluation, comparison) the figures show
    verdict_lines: list[str]
    tests: pd.DataFrame  # every paired test the verdict made (report/tests.csv)
    other_lines: list[str]
    gap_lines: list[str]
    data_lines: list[str]
    probe_overlap: pd.DataFrame
    interval_covers: str
    gaps: pd.DataFrame
    aggregate: pd.DataFrame
    collapsed: list[str]
    near_floor: list[str]
    undertrained: list[str]
    failures: list[dict[str, Any]]
    class_table: pd.DataFrame
    class_table_caption: str
    rarity: pd.DataFrame  # the gap by rarity rank over seeds
    rare_by_seed: pd.DataFrame  # each seed's tail classes
    cost: pd.DataFrame  # wall time per phase (report/cost.py), largest first
    figures: Figures
    tsne: list[str]
    notes: list[str]
    seeds: Any
    environment: dict[str, Any]
    config_text: str
    bottom_line: str = ""  # one plain-words paragraph above the verdict (bottom_line.py)
    tradeoff: pd.DataFrame = field(default_factory=pd.DataFrame)  # matched n by choice
    tradeoff_caption: str = TRADEOFF_CAPTION


NOTES_FILE = "notes.json"  # in the run directory: what study.size_notes said before training


def training_notes(run_dir: Path) -> list[str]:
    """What the study said before training (batches cut to their subset, what runs without a
    validation split), for the report's reader as for its log's."""
    import json

    try:
        notes = json.loads((run_dir / NOTES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # an older run, or none recorded
        return []
    return [f"Note: {n}." for n in notes if isinstance(n, str)] if isinstance(notes, list) else []


def report_content(run: RunDir) -> ReportContent:
    metric, reason = V.verdict_metric(run.stats)
    confirmatory = confirmatory_choice(run)
    vs = V.verdicts(run.tables["gap_runs"], run.results, metric, confirmatory)
    gaps, aggregate = run.tables["gaps"], run.tables["aggregate"]
    headline = headline_choice(gaps, confirmatory.pair)
    top = [v for v in vs if v.confirmatory] or [
        v for v in vs if (v.evaluation, v.comparison) == headline
    ]
    rest = [v for v in vs if all(v is not t for t in top)]
    classes, classes_caption = _class_table(run, headline)
    figures = Figures(RunLayout(run.path).figures)
    notes: list[str] = []
    if run.rebuilt_gaps:
        notes.append(
            "The gap tables were rebuilt from results.csv by today's rules: this run's were "
            "written before each arm was measured against its own random-init floor in Δ_learned."
        )
    draw_figures(run, figures, headline, metric, notes)
    tsne = draw_tsne(run, figures, notes) if run.report_setting("tsne", True) else []
    res = run.results
    collapsed = (
        sorted(set(res.loc[V.truthy(res, "collapsed"), "representation"]))
        if "collapsed" in res
        else []
    )
    return ReportContent(
        title=f"Study '{run.config.get('name', run.path.name)}'",
        metric=metric,
        metric_reason=reason,
        headline=headline,
        verdict_lines=verdict_block(
            run, [v for v in top if v.confirmatory], vs, reason, confirmatory.pair
        ),
        tests=V.tests_table(vs),
        other_lines=[line for v in rest for line in W.verdict_sentences(v)],
        gap_lines=gap_sentences(gaps, headline, metric)
        + (
            [
                "These summaries are the gap table's, over every seed; the verdict above has no "
                "gap for the seed pairs of failed representations."
            ]
            if any(v.left_out for v in top)
            else []
        ),
        data_lines=data_lines(run.stats)
        + group_interval_lines(run.tables.get(GROUP_INTERVALS), headline)
        + training_notes(run.path),
        probe_overlap=probe_overlap_table(run.stats),
        tradeoff=tradeoff_table(run.stats),
        interval_covers=str(
            run.stats.get("interval_covers")
            or "not recorded in this run's stats.json (an older run)"
        ),
        gaps=_columns(gaps, _gap_columns(metric)),
        aggregate=_columns(aggregate, _aggregate_columns(metric)),
        collapsed=collapsed,
        near_floor=W.near_floor(res, metric=metric),
        undertrained=undertrained_lines(res),
        failures=_failures(run),
        class_table=classes,
        class_table_caption=classes_caption,
        rarity=_rarity_table(run, headline),
        rare_by_seed=rare_classes_by_seed(run.stats),
        cost=cost_table(run.path),
        figures=figures,
        tsne=tsne,
        notes=notes,
        seeds=run.config.get(
            "seeds", sorted(set(res["seed"].dropna().astype(int))) if "seed" in res else []
        ),
        environment=run.environment,
        config_text=yaml.safe_dump(run.config, sort_keys=False)
        if run.config
        else "(no config.yaml)",
        bottom_line=bottom_line_of(run, [v for v in top if v.confirmatory], vs, confirmatory),
    )


def cost_table(run_dir: Path) -> pd.DataFrame:
    """Recorded wall time per phase (decode, pretraining, features, evaluation), largest first:
    where the study's time went, and what to cut first."""
    summary = cost_summary(cost_rows(run_dir))
    return pd.DataFrame(
        [
            {"phase": r["phase"], "minutes": r["seconds"] / 60, "share %": 100 * r["share"]}
            for r in summary
        ],
        columns=["phase", "minutes", "share %"],
    )


def _gap_columns(metric: str) -> list[str]:
    cols = ["scenario", "method", "evaluation", "comparison", "subset", "seeds"]
    for m in dict.fromkeys([metric, "tail"]):
        cols += [f"{m}_gap_mean", f"{m}_gap_ci95", f"{m}_rel_gap_mean", f"{m}_rel_gap_ci95"]
    return cols


def _aggregate_columns(metric: str) -> list[str]:
    cols = ["scenario", "method", "subset", "evaluation", "comparison", "seeds"]
    for m in dict.fromkeys([metric, "top1", "balanced_accuracy", "head", "medium", "tail"]):
        cols += [f"{m}_mean", f"{m}_ci95"]
    return [*cols, "undertrained_seeds"]


def _columns(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """The columns the report shows; an undertrained count only where a seed was flagged."""
    if df.empty:
        return df
    out = df[[c for c in cols if c in df]]
    flags = pd.to_numeric(out.get("undertrained_seeds", pd.Series(dtype=float)), errors="coerce")
    return out if flags.fillna(0).any() else out.drop(columns="undertrained_seeds", errors="ignore")


def _failures(run: RunDir) -> list[dict[str, Any]]:
    if run.failures:
        return [
            {"representation": str(f.get("representation")), "error": str(f.get("error", ""))}
            for f in run.failures
        ]
    res = run.results
    if "status" not in res:
        return []
    failed = res[res["status"] == "failed"].drop_duplicates("representation")
    return [
        {"representation": str(r.representation), "error": str(getattr(r, "error", ""))}
        for r in failed.itertuples()
    ]


def _class_table(run: RunDir, headline: tuple[str, str] | None) -> tuple[pd.DataFrame, str]:
    """The per-class table of the headline evaluation, and its caption."""
    if headline is None:
        return pd.DataFrame(), "no balanced-vs-imbalanced comparison was run."
    chosen = per_class_rows(run, *headline)
    if isinstance(chosen, str):
        return pd.DataFrame(), chosen
    pc, main, twin, _ = chosen
    names = run.stats.get("classes") or []
    counts = subset_counts(run.stats.get("subsets", {}).get(twin, {}))
    table = class_table(pc, main, twin, dict(zip(names, counts, strict=False)))
    seeds = pc["seed"].nunique() if "seed" in pc else 1
    coarse = coarseness_line(run.stats)
    return table, (
        f"{headline[0]}, {headline[1]}: per class, its training images in "
        f"{arm_words(twin, 'balanced')} and {arm_words(main, 'imbalanced')}, and each "
        f"method's test accuracy (%) in both arms and the gap ({twin} minus {main}, in "
        f"points, with the half-width of its 95% t-interval over seeds), mean over {seeds} "
        "seed(s). " + (f"{coarse} " if coarse else "") + "Click a column header to sort."
    )


def arm_words(name: str, kind: str) -> str:
    """'the balanced arm' when the subset is named so, else 'the balanced arm (name)': never
    'the balanced arm balanced'."""
    return f"the {kind} arm" if name == kind else f"the {kind} arm ({name})"


def _rarity_table(run: RunDir, headline: tuple[str, str] | None) -> pd.DataFrame:
    """The gap by rarity rank of the headline evaluation (classes/rarity_table)."""
    if headline is None:
        return pd.DataFrame()
    chosen = per_class_rows(run, *headline)
    if isinstance(chosen, str):
        return pd.DataFrame()
    pc, main, twin, _ = chosen
    return rarity_table(pc, main, twin)

"""The study report: one self-contained HTML file (figures embedded) and a Markdown summary,
built from the run directory alone (`write_report(run_dir)`)."""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from ..atomic import write_text, write_with
from ..data.profiles import imbalance_ratio
from ..faults import reached
from ..layout import RunLayout
from ..names import TRAINED_SCENARIOS
from . import display as D
from . import verdict as V
from .bottom_line import bottom_line
from .classes import class_table, coarseness_line, rare_classes_by_seed, rarity_table
from .cost import cost_rows, cost_summary
from .plots import (
    METRIC_LABELS,
    class_counts_figure,
    class_gaps,
    gap_figure,
    group_bars_figure,
    method_palette,
    plt,
    which_classes_pay_figure,
)
from .rundir import RunDir, load_run
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


def write_report(run_dir: str | Path) -> Path:
    """Write report/report.html, report/summary.md and report/figures/*.png under `run_dir`
    from the files the study left there; return the HTML path."""
    run = load_run(run_dir)
    c = report_content(run)
    layout = RunLayout(run.path)
    write_text(layout.tests, c.tests.to_csv(index=False))
    write_text(layout.summary, markdown(c))
    return write_text(layout.report_html, render_html(c))


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


def headline_lines(run_dir: str | Path) -> list[str]:
    """The verdict sentences (the confirmatory comparison first) with the same caveats as the
    report's, for the CLI after a run."""
    run = load_run(run_dir)
    metric, reason = V.verdict_metric(run.stats)
    confirmatory = confirmatory_choice(run)
    vs = V.verdicts(run.tables["gap_runs"], run.results, metric, confirmatory)
    top = [v for v in vs if v.confirmatory]
    lead = bottom_line(top, vs, confirmatory, run.results, run.stats)
    return [f"Bottom line: {lead}", *_verdict_block(run, top, vs, reason, confirmatory)]


def confirmatory_choice(run: RunDir) -> tuple[str, str]:
    """The study's declared confirmatory (evaluation, comparison) from its config."""
    chosen = run.report_setting("confirmatory", None) or {}
    default = dict(zip(("evaluation", "comparison"), V.HEADLINE, strict=True))
    return (
        str(chosen.get("evaluation", default["evaluation"])),
        str(chosen.get("comparison", default["comparison"])),
    )


def headline_choice(gaps: pd.DataFrame, confirmatory: tuple[str, str] = V.HEADLINE):
    """The confirmatory comparison when the study has its gaps, else the first gap (whose
    tests are then exploratory like every other)."""
    if gaps.empty:
        return None
    comparisons = (
        gaps["comparison"] if "comparison" in gaps else pd.Series("pretraining", gaps.index)
    )
    pairs = list(dict.fromkeys(zip(gaps["evaluation"], comparisons, strict=True)))
    return confirmatory if confirmatory in pairs else pairs[0]


def _verdict_block(
    run: RunDir,
    top: list[V.Verdict],
    vs: list[V.Verdict],
    reason: str,
    confirmatory: tuple[str, str],
) -> list[str]:
    """The verdict's lines: the confirmatory comparison (or why there is none), the count of
    tests made, and the caveats that bear on it."""
    res = run.results
    shown_ev = top[0].evaluation if top else (vs[0].evaluation if vs else None)
    shown = res[res["evaluation"] == shown_ev] if shown_ev and "evaluation" in res else res
    made = V.tests_table(vs)
    count = int((made["seeds"] >= 2).sum()) if not made.empty else 0
    lines = V.render(top or vs[:1], reason)
    if not top and vs:
        lines.insert(
            1 if reason else 0,
            f"The declared confirmatory comparison ({confirmatory[0]}, {confirmatory[1]} gap) "
            "was not run in this study, so every comparison here is exploratory.",
        )
    if count:
        lines.append(
            f"This study made {count} paired tests in all (methods x SL variants x evaluations "
            "x gap kinds x levels, on Δ and Δ_learned); only the confirmatory family's words are "
            "a finding, and every other test is labelled exploratory (report/tests.csv)."
        )
    lines += [f"Caveat, near the random-init floor: {line}" for line in V.near_floor(shown)]
    lines += [f"Caveat, {line}" for line in undertrained_lines(shown)]
    lines += [f"Caveat, {line}" for line in knn_caveats(run)]
    return lines


def knn_caveats(run: RunDir) -> list[str]:
    """kNN evaluations whose k exceeds the probe set's images per class: most of each vote then
    comes from other classes, so the number says more about k than about the features."""
    probe = run.stats.get("probe_balanced", {}).get("per_class")
    if not isinstance(probe, int) or "evaluation" not in run.results:
        return []
    out = []
    for ev in dict.fromkeys(run.results["evaluation"].dropna().astype(str)):
        if ev.startswith("knn-k") and ev[5:].isdigit() and int(ev[5:]) > probe:
            out.append(
                f"{ev}: k = {ev[5:]} is larger than the probe set's {probe} images per class, so "
                "every vote reaches into other classes"
            )
    return out


def report_content(run: RunDir) -> ReportContent:
    metric, reason = V.verdict_metric(run.stats)
    confirmatory = confirmatory_choice(run)
    vs = V.verdicts(run.tables["gap_runs"], run.results, metric, confirmatory)
    gaps, aggregate = run.tables["gaps"], run.tables["aggregate"]
    headline = headline_choice(gaps, confirmatory)
    top = [v for v in vs if v.confirmatory] or [
        v for v in vs if (v.evaluation, v.comparison) == headline
    ]
    rest = [v for v in vs if all(v is not t for t in top)]
    classes, classes_caption = _class_table(run, headline)
    figures = Figures(RunLayout(run.path).figures)
    notes: list[str] = []
    _draw(run, figures, headline, metric, notes)
    tsne = _tsne(run, figures, notes) if run.report_setting("tsne", True) else []
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
        verdict_lines=_verdict_block(
            run, [v for v in top if v.confirmatory], vs, reason, confirmatory
        ),
        tests=V.tests_table(vs),
        other_lines=[line for v in rest for line in V.verdict_sentences(v)],
        gap_lines=gap_sentences(gaps, headline, metric)
        + (
            [
                "These summaries are the gap table's, over every seed; the verdict above leaves "
                "out the seed pairs of collapsed or failed representations."
            ]
            if any(v.left_out for v in top)
            else []
        ),
        data_lines=data_lines(run.stats),
        probe_overlap=probe_overlap_table(run.stats),
        interval_covers=str(
            run.stats.get("interval_covers")
            or "not recorded in this run's stats.json (an older run)"
        ),
        gaps=_columns(gaps, _gap_columns(metric)),
        aggregate=_columns(aggregate, _aggregate_columns(metric)),
        collapsed=collapsed,
        near_floor=V.near_floor(res),
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
        bottom_line=bottom_line(
            [v for v in top if v.confirmatory], vs, confirmatory, res, run.stats
        ),
    )


# -- sentences and tables --------------------------------------------------------------------


def gap_sentences(gaps: pd.DataFrame, headline: tuple[str, str] | None, metric: str) -> list[str]:
    """How much each method loses under imbalance, in the headline evaluation and gap kind."""
    if headline is None:
        return ["No balanced-vs-imbalanced comparison was run (no trained method finished)."]
    g = _rows(gaps, *headline)
    words = METRIC_LABELS.get(metric, metric)
    lines = []
    for r in g.itertuples():
        d = r._asdict()
        mean, ci = d[f"{metric}_gap_mean"], d.get(f"{metric}_gap_ci95", math.nan)
        rel, rel_ci = d[f"{metric}_rel_gap_mean"], d.get(f"{metric}_rel_gap_ci95", math.nan)
        verb = "loses" if mean >= 0 else "gains"
        seeds = int(d.get("seeds", 1))
        spread = (
            f", 95% t-interval ± {100 * ci:.1f} points over {seeds} seeds"
            if seeds > 1 and not _nan(ci)
            else ", one seed: no interval"
        )
        lines.append(
            f"{r.method} ({r.scenario}) {verb} {100 * abs(mean):.1f} points {words} "
            f"from balanced to {r.subset}{spread} (Δ = {_pct(rel)}"
            + ("" if _nan(rel_ci) or seeds < 2 else f" ± {_pct(rel_ci)}")
            + ")."
        )
    return lines


def data_lines(stats: dict[str, Any]) -> list[str]:
    """The data section's sentences from data/stats.json (older runs: fewer keys)."""
    lines = []
    splits = stats.get("splits", {})
    sizes = ", ".join(f"{s} {_total(d)}" for s, d in splits.items())
    lines.append(f"{len(stats.get('classes', []))} classes; {sizes or 'split sizes not recorded'}.")
    test = _counts(splits.get("test", {}))
    if not V.test_is_balanced(stats):
        span = f" ({min(test)}..{max(test)} images per class)" if test else ""
        lines.append(
            f"The test split is NOT balanced{span}: balanced accuracy leads, and the verdict "
            "uses it."
        )
    elif test:
        lines.append(f"The test split is balanced ({test[0]} images per class).")
    for name, s in stats.get("subsets", {}).items():
        c = _counts(s)
        span = f", per class {min(c)}..{max(c)} (ratio {min(c) / max(c):.3f})" if c else ""
        kind = "balanced" if s.get("balanced") else f"level {s.get('level')}"
        lines.append(f"subset {name} ({kind}): n = {s.get('n', sum(c))}{span}.")
    groups = stats.get("groups", {})
    if groups:
        members = {g: len(v) for g, v in groups.get("members", {}).items()}
        lines.append(
            f"head/medium/tail by the '{groups.get('rule')}' rule from "
            f"{groups.get('from_subset')}'s counts: {members}."
        )
    lines.append(_probe_line(stats.get("probe_balanced", {})))
    bad = stats.get("bad_images", {})
    count = bad.get("count", 0) if isinstance(bad, dict) else len(bad)
    if count:
        lines.append(f"{count} unreadable images were left out.")
    from ..data.tradeoff import natural_data_lines

    return lines + natural_data_lines(stats)


def _probe_line(probe: dict[str, Any]) -> str:
    protocol = probe.get("protocol")
    how = {
        "disjoint": "disjoint from every pretraining subset",
        "pool": "drawn from the same pool as the subsets, so it can overlap them",
    }.get(protocol, "protocol not recorded (an older run)")
    per_class = probe.get("per_class")
    if isinstance(per_class, list):
        per_class = f"{min(per_class)}..{max(per_class)}" if per_class else "?"
    return (
        f"balanced labelled set for probes and kNN: {probe.get('n', '?')} images, "
        f"{per_class} per class, {how}."
    )


def probe_overlap_table(stats: dict[str, Any]) -> pd.DataFrame:
    """Per seed and subset: how many probe images are also in the subset (disjoint: 0)."""
    rows = [
        {
            "seed": seed,
            "subset": subset,
            "overlap_images": int(sum(counts)),
            "classes_overlapping": int(sum(1 for c in counts if c)),
        }
        for seed, by_subset in (stats.get("probe_overlap") or {}).items()
        for subset, counts in by_subset.items()
    ]
    return pd.DataFrame(rows, columns=["seed", "subset", "overlap_images", "classes_overlapping"])


def undertrained_lines(results: pd.DataFrame) -> list[str]:
    """One sentence per evaluation and representation set whose fine-tune kept its last epoch
    as the best on validation: still improving when it stopped."""
    flagged = results[V.truthy(results, "possibly_undertrained")]
    lines = []
    for (ev, scenario, method, subset), g in flagged.groupby(
        ["evaluation", "scenario", "method", "subset"], sort=False
    ):
        seeds = ", ".join(str(int(s)) for s in sorted(g["seed"].unique()))
        lines.append(
            f"possibly undertrained: {ev} of {method} ({scenario}, {subset}, seed {seeds}) kept "
            "its last epoch as the best on validation; more epochs may raise its accuracy."
        )
    return lines


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


def _rows(df: pd.DataFrame, evaluation: str, comparison: str) -> pd.DataFrame:
    out = df[df["evaluation"] == evaluation]
    return out[out["comparison"] == comparison] if "comparison" in out else out


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


def _counts(d: dict[str, Any]) -> list[int]:
    for key in ("counts", "per_class"):
        if isinstance(d.get(key), list):
            return [int(x) for x in d[key]]
    return []


def _total(d: dict[str, Any]) -> int:
    return int(d.get("n", sum(_counts(d))))


def _pct(x: float) -> str:
    return "n/a" if _nan(x) else f"{100 * x:.1f}%"


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


# -- figures ---------------------------------------------------------------------------------


def _main_subset(run: RunDir) -> str | None:
    """The main imbalanced subset D(n,r): the one the groups come from."""
    main = run.stats.get("groups", {}).get("from_subset")
    if main:
        return str(main)
    names = [n for n, s in run.stats.get("subsets", {}).items() if not s.get("balanced")]
    return names[0] if names else None


def _balanced_twin(run: RunDir, subset: str) -> str | None:
    """The balanced subset of the same size n as `subset`."""
    subsets = run.stats.get("subsets", {})
    n = subsets.get(subset, {}).get("n")
    balanced = [k for k, s in subsets.items() if s.get("balanced")]
    same = [k for k in balanced if n is None or subsets[k].get("n") == n]
    if same or balanced:
        return (same or balanced)[0]
    res = run.results
    if "balanced" in res:
        names = res.loc[V.truthy(res, "balanced"), "subset"].dropna().unique()
        return str(names[0]) if len(names) else None
    return None


def _draw(
    run: RunDir,
    figures: Figures,
    headline: tuple[str, str] | None,
    metric: str,
    notes: list[str],
) -> None:
    stats, main = run.stats, _main_subset(run)
    groups = stats.get("groups", {}).get("per_class")
    counts = _counts(stats.get("subsets", {}).get(main, {})) if main else []
    if counts and groups and stats.get("classes"):
        c = np.asarray(counts)
        figures.add(
            "class_counts",
            class_counts_figure(
                stats["classes"],
                c,
                np.asarray(groups),
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
    if not agg.empty and not _rows(agg, ev, comparison).empty:
        figures.add(
            "groups",
            group_bars_figure(agg, ev, metric, comparison if "comparison" in agg else None),
            f"{ev}: accuracy by group; the axis runs from 0 to 100% and intervals reaching "
            "past it are clipped there (the title counts them)",
        )
    chosen = _per_class_rows(run, ev, comparison)
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


def _per_class_rows(
    run: RunDir, ev: str, comparison: str
) -> tuple[pd.DataFrame, str, str, set[str]] | str:
    """The headline evaluation's per-class rows without collapsed or failed representations,
    the main imbalanced subset and its balanced twin; or why there are none."""
    pc, main = run.tables["per_class"], _main_subset(run)
    twin = _balanced_twin(run, main) if main else None
    if pc.empty or main is None or twin is None:
        return "no per-class table or no balanced twin subset."
    bad = set(V.left_out_representations(run.results)["representation"])
    pc = pc[~pc["representation"].isin(bad)] if "representation" in pc else pc
    pc = pc[pc["evaluation"] == ev]
    if "comparison" in pc:
        pc = pc[pc["comparison"] == comparison]
    arms = set(pc["subset"])
    if twin not in arms or main not in arms:
        return f"no method has both arms ({twin}, {main}) on {ev}."
    return pc, main, twin, bad


def _class_table(run: RunDir, headline: tuple[str, str] | None) -> tuple[pd.DataFrame, str]:
    """The per-class table of the headline evaluation, and its caption."""
    if headline is None:
        return pd.DataFrame(), "no balanced-vs-imbalanced comparison was run."
    chosen = _per_class_rows(run, *headline)
    if isinstance(chosen, str):
        return pd.DataFrame(), chosen
    pc, main, twin, _ = chosen
    names = run.stats.get("classes") or []
    counts = _counts(run.stats.get("subsets", {}).get(twin, {}))
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
    chosen = _per_class_rows(run, *headline)
    if isinstance(chosen, str):
        return pd.DataFrame()
    pc, main, twin, _ = chosen
    return rarity_table(pc, main, twin)


def _tsne(run: RunDir, figures: Figures, notes: list[str]) -> list[str]:
    """One t-SNE figure per method of the first seed: a trained method's balanced and main
    imbalanced representations side by side, a fixed one (imported, random init) alone; from
    the cached test features."""
    res, labels = run.results, run.test_labels()
    groups = run.stats.get("groups", {}).get("per_class")
    if res.empty or "rep_dir" not in res or labels is None or not groups:
        notes.append("t-SNE: no test manifest, groups or representation folders recorded.")
        return []
    ok = res[(res["status"] == "ok") & ~V.truthy(res, "collapsed")].dropna(subset=["rep_dir"])
    if ok.empty:
        return []
    seed = ok["seed"].min()
    ok = ok[ok["seed"] == seed]
    # groups can differ per seed when subsets are drawn per seed: take this seed's
    seeded = run.stats.get("seeds", {}).get(str(int(seed)), {}).get("groups", {})
    groups = seeded.get("per_class") or groups
    names = run.stats.get("classes") or [str(c) for c in range(int(labels.max()) + 1)]
    main = _main_subset(run)
    twin = _balanced_twin(run, main) if main else None
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
            tsne_figure(arms, labels, np.asarray(groups), list(names), title, limit, int(seed)),
            f"t-SNE of {method} ({scenario}), seed {int(seed)}: "
            + " | ".join(name for name, _ in arms),
        )
        out.append(f"tsne-{rep}")
    return out


# -- renderings ------------------------------------------------------------------------------


def markdown_table(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    if df.empty:
        return "_(empty)_"
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = [
            floatfmt.format(v)
            if isinstance(v, float) and not math.isnan(v)
            else ("" if isinstance(v, float) else str(v))
            for v in row
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(c: ReportContent) -> str:
    bullets = lambda xs: [f"- {x}" for x in xs]  # noqa: E731
    figs = [k for k in c.figures.images if not k.startswith("tsne-")]
    tables = lambda parts: "\n\n".join(markdown_table(D.formatted(p)) for p in parts)  # noqa: E731
    caption = c.class_table_caption.replace("Click a column header to sort.", "").strip()
    parts = [
        f"# {c.title}: is SSL more robust to class imbalance than SL?",
        "",
        *([f"**Bottom line:** {c.bottom_line}", ""] if c.bottom_line else []),
        "## Verdict",
        *bullets(c.verdict_lines),
        "",
        "### How much each method loses",
        *bullets(c.gap_lines),
        "",
        "### Every test made",
        tables([D.tests_table(c.tests)]) if not c.tests.empty else "_(none)_",
        "",
        "### Other comparisons",
        *(bullets(c.other_lines) or ["_(none)_"]),
        "",
        "## Data",
        *bullets(c.data_lines),
        "",
        "### Probe set overlap with each arm's subsets",
        markdown_table(c.probe_overlap) if not c.probe_overlap.empty else "_(not recorded)_",
        "",
        "## Balanced-vs-imbalanced gap",
        f"_What an interval covers:_ {c.interval_covers}",
        "",
        tables(D.gap_parts(c.gaps, c.metric)) or "_(none)_",
        "",
        "## Accuracy (mean and 95% t-interval over seeds)",
        tables(D.aggregate_parts(c.aggregate, c.metric)) or "_(none)_",
        "",
        "## Which classes pay",
        f"_{caption}_" if caption else "",
        "",
        tables(D.class_parts(c.class_table)) or "_(none)_",
        "",
        "### The gap by rarity rank (points; 1 = the rarest class of each seed)",
        tables([c.rarity]) if not c.rarity.empty else "_(none)_",
        "",
        "### The tail classes of each seed",
        markdown_table(c.rare_by_seed) if not c.rare_by_seed.empty else "_(not recorded)_",
        "",
        "## Figures",
        *[f"![{k}](figures/{k}.png)" for k in figs + c.tsne],
        *bullets(c.notes),
        "",
        "## Where the time went",
        tables([c.cost]) if not c.cost.empty else "_(not recorded)_",
        "",
        "## Collapse and failures",
        f"- collapsed representations: {', '.join(c.collapsed)}"
        if c.collapsed
        else "- no representation collapsed",
        *[f"- near the random-init floor: {line}" for line in c.near_floor],
        *[f"- {line}" for line in c.undertrained],
        *[f"- FAILED {f['representation']}: {f['error']}" for f in c.failures],
        "",
    ]
    return "\n".join(parts)


def _template() -> jinja2.Template:
    text = resources.files(__package__).joinpath("template.html").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(text)


def render_html(c: ReportContent) -> str:
    from .. import __version__

    def table(*parts: pd.DataFrame) -> str:
        """Each part a sortable table whose cells carry their column's format and unit."""
        return "\n".join(
            D.breakable_headers(
                D.formatted(p).to_html(index=False, na_rep="", border=0, classes="sortable")
            )
            for p in parts
        )

    return _template().render(
        c=c,
        fig=c.figures.images,
        tables={
            "gaps": table(*D.gap_parts(c.gaps, c.metric)),
            "tests": table(D.tests_table(c.tests)) if not c.tests.empty else "<p>none</p>",
            "aggregate": table(*D.aggregate_parts(c.aggregate, c.metric)),
            "probe_overlap": table(c.probe_overlap) if not c.probe_overlap.empty else "",
            "classes": table(*D.class_parts(c.class_table)) if not c.class_table.empty else "",
            "rarity": table(c.rarity) if not c.rarity.empty else "",
            "rare_by_seed": table(c.rare_by_seed) if not c.rare_by_seed.empty else "",
            "cost": table(c.cost) if not c.cost.empty else "",
        },
        environment=json.dumps(c.environment, indent=2),
        version=__version__,
    )

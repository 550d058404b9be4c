"""The study report: one self-contained HTML file (figures embedded) and a Markdown summary."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

from ..atomic import write_text
from ..config import StudyConfig
from ..data.prepare import StudyData
from .plots import class_counts_figure, gap_figure, group_bars_figure, per_class_figure, plt
from .tables import StudyTables
from .tsne import tsne_figure

HEADLINE_EVALS = ("linear-balanced", "linear-imbalanced", "knn-k20", "finetune")


def headline_evaluation(tables: StudyTables) -> str | None:
    evals = list(dict.fromkeys(tables.results.get("evaluation", pd.Series(dtype=str)).dropna()))
    for name in HEADLINE_EVALS:
        if name in evals:
            return name
    return evals[0] if evals else None


def headline(tables: StudyTables, evaluation: str | None) -> list[str]:
    """Plain sentences: how much each method loses to imbalance, and whether SSL loses less."""
    gaps = tables.gaps
    if evaluation is None or gaps.empty:
        return ["No balanced-vs-imbalanced comparison was run (no trained method finished)."]
    g = gaps[gaps["evaluation"] == evaluation]
    lines = []
    for subset, grp in g.groupby("subset", sort=False):
        sl = grp[grp["scenario"] == "SL"]
        ssl = grp[grp["scenario"] == "SSL-in-domain"]
        parts = [_gap_words(r) for r in grp.itertuples()]
        lines.append(f"**{evaluation}, balanced vs {subset}:** " + "; ".join(parts) + ".")
        if not sl.empty and not ssl.empty:
            ref = sl.iloc[0]
            for r in ssl.itertuples():
                less = r.top1_rel_gap_mean < ref["top1_rel_gap_mean"]
                overlap = _intervals_overlap(
                    r.top1_rel_gap_mean,
                    r.top1_rel_gap_ci95,
                    ref["top1_rel_gap_mean"],
                    ref["top1_rel_gap_ci95"],
                )
                verdict = "loses less than" if less else "does not lose less than"
                caveat = (
                    " (the 95% intervals over seeds overlap: not conclusive)" if overlap else ""
                )
                lines.append(
                    f"→ {r.method} {verdict} {ref['method']}: relative gap "
                    f"{_pct(r.top1_rel_gap_mean)} vs {_pct(ref['top1_rel_gap_mean'])}"
                    f"{caveat}."
                )
    return lines


def _gap_words(r: Any) -> str:
    ci = "" if _nan(r.top1_gap_ci95) else f" ± {100 * r.top1_gap_ci95:.1f}"
    verb = "loses" if r.top1_gap_mean >= 0 else "gains"
    return (
        f"{r.method} ({r.scenario}) {verb} {100 * abs(r.top1_gap_mean):.1f}{ci} points top-1 "
        f"under imbalance (Δ = {_pct(r.top1_rel_gap_mean)})"
    )


def _pct(x: float) -> str:
    return "n/a" if _nan(x) else f"{100 * x:.1f}%"


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _intervals_overlap(m1: float, c1: float, m2: float, c2: float) -> bool:
    if _nan(c1) or _nan(c2):
        return True
    return abs(m1 - m2) <= c1 + c2


def _png(fig: Figure, path: Path) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return base64.b64encode(data).decode()


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


def write_report(
    out: Path,
    cfg: StudyConfig,
    data: StudyData,
    tables: StudyTables,
    failures: list[dict[str, Any]],
) -> Path:
    """Write report/report.html and report/summary.md under `out`; return the HTML path."""
    rdir = out / "report"
    figs: dict[str, str] = {}
    counts = data.train_counts()
    figs["class_counts"] = _png(
        class_counts_figure(
            data.class_names,
            counts,
            data.groups,
            f"{data.imbalanced_name}: {int(counts.sum())} images, ratio "
            f"{counts.min() / counts.max():.3f}",
        ),
        rdir / "figures" / "class_counts.png",
    )
    ev = headline_evaluation(tables)
    if ev is not None and not tables.gaps.empty:
        figs["gap"] = _png(gap_figure(tables.gaps, ev), rdir / "figures" / "gap.png")
    if ev is not None and not tables.aggregate.empty:
        figs["groups"] = _png(
            group_bars_figure(tables.aggregate, ev), rdir / "figures" / "groups.png"
        )
    if ev is not None and not tables.per_class.empty:
        figs["per_class"] = _png(
            per_class_figure(tables.per_class, ev, data.imbalanced_name),
            rdir / "figures" / "per_class.png",
        )
    tsne = _tsne_figures(out, cfg, data, tables, rdir) if cfg.report.tsne else {}
    agg, gaps = _summary_frames(tables)
    res = tables.results
    collapsed = sorted(set(res.loc[res["collapsed"] == True, "representation"]))  # noqa: E712
    content = ReportContent(
        cfg, data, tables, failures, headline(tables, ev), figs, tsne, agg, gaps, collapsed
    )
    write_text(rdir / "summary.md", _markdown(content))
    return write_text(rdir / "report.html", _html(content))


def _tsne_figures(
    out: Path, cfg: StudyConfig, data: StudyData, tables: StudyTables, rdir: Path
) -> dict[str, str]:
    """One t-SNE per representation of the first seed on the imbalanced subset (plus imported
    and random init), from the cached test features."""
    res = tables.results
    if res.empty or "rep_dir" not in res:
        return {}
    seed = cfg.seeds[0]
    pick = res[
        (res["seed"] == seed)
        & (res["status"] == "ok")
        & res["subset"].isin([data.imbalanced_name, "-"])
    ]
    labels = data.labels[data.indices("test")]
    figs = {}
    for rep, rep_dir in dict(zip(pick["representation"], pick["rep_dir"], strict=True)).items():
        path = out / "representations" / str(rep_dir) / "features" / "test.npy"
        if path.exists():
            figs[rep] = _png(
                tsne_figure(np.load(path), labels, data.groups, rep, cfg.report.tsne_max_points),
                rdir / "figures" / f"tsne-{rep}.png",
            )
    return figs


def _data_lines(data: StudyData) -> list[str]:
    lines = [
        f"{data.num_classes} classes; train pool {len(data.indices('train'))}, "
        f"val {len(data.indices('val'))}, test {len(data.indices('test'))} images."
    ]
    for p in data.plans:
        lines.append(
            f"subset {p.name}: n = {p.size}, per class {int(p.counts.min())}.."
            f"{int(p.counts.max())} (ratio {p.counts.min() / p.counts.max():.3f})"
        )
    members = {g: int((data.groups == g).sum()) for g in ("head", "medium", "tail")}
    lines.append(
        f"groups by the '{data.group_rule}' rule from {data.imbalanced_name}'s counts: {members}"
    )
    lines.append(f"balanced labelled set for probes: {len(data.probe_balanced)} images.")
    return lines


def _summary_frames(tables: StudyTables) -> tuple[pd.DataFrame, pd.DataFrame]:
    agg = tables.aggregate
    cols = [
        "scenario",
        "method",
        "subset",
        "evaluation",
        "seeds",
        "top1_mean",
        "top1_std",
        "balanced_accuracy_mean",
        "head_mean",
        "medium_mean",
        "tail_mean",
    ]
    agg = agg[[c for c in cols if c in agg]] if not agg.empty else agg
    gaps = tables.gaps
    gcols = [
        "scenario",
        "method",
        "evaluation",
        "subset",
        "seeds",
        "top1_gap_mean",
        "top1_gap_ci95",
        "top1_rel_gap_mean",
        "top1_rel_gap_ci95",
        "tail_gap_mean",
    ]
    gaps = gaps[[c for c in gcols if c in gaps]] if not gaps.empty else gaps
    return agg, gaps


@dataclass
class ReportContent:
    """Everything both renderings (HTML and Markdown) show."""

    cfg: StudyConfig
    data: StudyData
    tables: StudyTables
    failures: list[dict[str, Any]]
    sentences: list[str]
    figs: dict[str, str]
    tsne: dict[str, str]
    agg: pd.DataFrame
    gaps: pd.DataFrame
    collapsed: list[str]


def _markdown(c: ReportContent) -> str:
    parts = [
        f"# Study '{c.cfg.name}': is SSL more robust to class imbalance than SL?",
        "",
        "## Headline",
        *[f"- {s}" for s in c.sentences],
        "",
        "## Data",
        *[f"- {s}" for s in _data_lines(c.data)],
        "",
        "## Balanced-vs-imbalanced gap",
        markdown_table(c.gaps),
        "",
        "## Accuracy (mean over seeds)",
        markdown_table(c.agg),
        "",
        "## Figures",
        *[f"![{k}](figures/{k}.png)" for k in c.figs],
        *[f"![t-SNE {k}](figures/tsne-{k}.png)" for k in c.tsne],
        "",
        "## Collapse and failures",
        f"- collapsed representations: {c.collapsed}"
        if c.collapsed
        else "- no representation collapsed",
        *[f"- FAILED {f['representation']}: {f['error']}" for f in c.failures],
        "",
    ]
    return "\n".join(parts)


def _html(c: ReportContent) -> str:
    from .. import __version__
    from ..study import environment

    figs = c.figs

    def img(b64: str, alt: str) -> str:
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'

    def bullets(lines: list[str]) -> str:
        return "<ul>" + "".join(f"<li>{line}</li>" for line in lines) + "</ul>"

    def bold(s: str) -> str:
        s = html.escape(s)
        while "**" in s:
            s = s.replace("**", "<b>", 1).replace("**", "</b>", 1)
        return s

    def table(df: pd.DataFrame) -> str:
        return df.to_html(index=False, float_format="%.3f", na_rep="", border=0)

    collapse = (
        [f"collapsed: {html.escape(str(c.collapsed))}"]
        if c.collapsed
        else ["no representation collapsed"]
    )
    failed = [
        f"<span class='fail'>FAILED {html.escape(f['representation'])}:</span> "
        f"<pre>{html.escape(f['error'])}</pre>"
        for f in c.failures
    ]
    config = yaml.safe_dump(c.cfg.model_dump(mode="json"), sort_keys=False)
    sections = [
        (
            "Headline",
            bullets([bold(s) for s in c.sentences])
            + (img(figs["gap"], "gap chart") if "gap" in figs else ""),
        ),
        (
            "Data",
            bullets([html.escape(s) for s in _data_lines(c.data)])
            + img(figs["class_counts"], "class counts"),
        ),
        ("Balanced-vs-imbalanced gap", table(c.gaps)),
        (
            "Accuracy by group",
            (img(figs["groups"], "group accuracy") if "groups" in figs else "") + table(c.agg),
        ),
        (
            "Per-class accuracy",
            img(figs["per_class"], "per-class accuracy") if "per_class" in figs else "<p>none</p>",
        ),
        ("t-SNE of test features", "".join(img(v, k) for k, v in c.tsne.items()) or "<p>none</p>"),
        ("Collapse and failures", bullets(collapse + failed)),
        (
            "Reproducibility",
            f"<p>seeds {c.cfg.seeds}; ssl-robustness {__version__}</p><pre>"
            + html.escape(json.dumps(environment(), indent=2))
            + "</pre><h3>config</h3><pre>"
            + html.escape(config)
            + "</pre>",
        ),
    ]
    body = "".join(
        f"<section id='{html.escape(t.lower().replace(' ', '-'))}'><h2>"
        f"{html.escape(t)}</h2>{body}</section>"
        for t, body in sections
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(c.cfg.name)}: SSL vs SL under
imbalance</title><style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; font-size: 12px; margin: 1em 0; }}
td, th {{ padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; }}
img {{ max-width: 100%; margin: 0.5em 0; }} pre {{ background: #f6f6f6; padding: 0.6em;
overflow-x: auto; font-size: 12px; }} .fail {{ color: #b00; }}
</style></head><body><h1>Study '{html.escape(c.cfg.name)}': is SSL more robust to class imbalance
than SL?</h1>{body}</body></html>
"""

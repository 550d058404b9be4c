"""Rendering: the report as one self-contained HTML page and a Markdown summary."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import jinja2
import pandas as pd

from ..atomic import write_text
from ..layout import RunLayout
from . import display as D
from .content import ReportContent, report_content
from .rundir import load_run


def write_report(run_dir: str | Path) -> Path:
    """Write report/report.html, report/summary.md and report/figures/*.png under `run_dir`
    from the files the study left there; return the HTML path."""
    run = load_run(run_dir)
    c = report_content(run)
    layout = RunLayout(run.path)
    write_text(layout.tests, c.tests.to_csv(index=False))
    write_text(layout.summary, markdown(c))
    return write_text(layout.report_html, render_html(c))


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
        *(
            [f"_{c.tradeoff_caption}_", "", tables([c.tradeoff]), ""]
            if not c.tradeoff.empty
            else []
        ),
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
            "tradeoff": table(c.tradeoff) if not c.tradeoff.empty else "",
        },
        environment=json.dumps(c.environment, indent=2),
        version=__version__,
    )

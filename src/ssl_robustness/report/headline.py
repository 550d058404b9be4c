"""The verdict block: the confirmatory comparison, its sentences and the caveats on it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import verdict as V
from . import verdict_words as W
from .bottom_line import bottom_line
from .registered import confirmatory_choice, registration_line
from .rundir import RunDir, load_run


def headline_lines(run_dir: str | Path) -> list[str]:
    """The verdict sentences (the confirmatory comparison first) with the same caveats as the
    report's, for the CLI after a run."""
    run = load_run(run_dir)
    metric, reason = V.verdict_metric(run.stats)
    confirmatory = confirmatory_choice(run)
    vs = V.verdicts(run.tables["gap_runs"], run.results, metric, confirmatory)
    top = [v for v in vs if v.confirmatory]
    lead = bottom_line_of(run, top, vs, confirmatory)
    return [f"Bottom line: {lead}", *verdict_block(run, top, vs, reason, confirmatory.pair)]


def bottom_line_of(
    run: RunDir, top: list[V.Verdict], vs: list[V.Verdict], confirmatory: V.Confirmatory
) -> str:
    """The bottom line, with the departure from the registration first where there is one."""
    text = bottom_line(top, vs, confirmatory.pair, run.results, run.stats)
    line, departs = registration_line(run)
    return f"{text} {line}" if departs else text


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


def verdict_block(
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
    lines = [registration_line(run)[0], *W.render(top or vs[:1], reason)]
    if not top and vs:
        lines.insert(
            2 if reason else 1,
            f"The declared confirmatory comparison ({confirmatory[0]}, {confirmatory[1]} gap) "
            "was not run in this study, so every comparison here is exploratory.",
        )
    if count:
        lines.append(
            f"This study made {count} paired tests in all (methods x SL variants x evaluations "
            "x gap kinds x levels, on Δ and Δ_learned); only the confirmatory family's words are "
            "a finding, and every other test is labelled exploratory (report/tests.csv)."
        )
    metric = V.verdict_metric(run.stats)[0]
    near = W.near_floor(shown, metric=metric)
    lines += [f"Caveat, near the random-init floor: {line}" for line in near]
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

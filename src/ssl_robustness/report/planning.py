"""How many seeds a study needs: `run --plan` says, before training, how many seeds detect a
difference of Δ of the size the user named (`report.effect_of_interest`) with 80% power, from
the spread of the paired differences of earlier results in the same output directory."""

from __future__ import annotations

import math
from pathlib import Path

from ..layout import RunLayout
from . import verdict as V
from .paired import ALPHA, MIN_SEEDS_FOR_WORDS
from .power import POWER, sd_upper, seeds_needed
from .registered import confirmatory_choice
from .rundir import load_run


def seeds_needed_lines(run_dir: Path, effect_points: float) -> list[str]:
    """One line per confirmatory pair of the earlier results, or why it is not known yet."""
    head = (
        f"seeds needed to detect a difference of {effect_points:g} points of Δ "
        f"(report.effect_of_interest) with {POWER:.0%} power"
    )
    if not RunLayout(Path(run_dir)).results.exists():
        return [f"{head}: unknown until 2 seeds have run (no earlier results in {run_dir})"]
    run = load_run(run_dir)
    metric, _ = V.verdict_metric(run.stats)
    vs = V.verdicts(run.tables["gap_runs"], run.results, metric, confirmatory_choice(run))
    family = [
        p
        for v in vs
        if v.confirmatory
        for p in v.pairs
        if p.family == V.CONFIRMATORY and len(p.seeds) >= 2 and math.isfinite(p.sd) and p.sd > 0
    ]
    if not family:
        return [f"{head}: unknown until 2 seeds have run (no confirmatory pair with a spread yet)"]
    alpha = ALPHA / len(family)  # Holm's strictest threshold
    lines = [f"{head}, at alpha {alpha:.3g} (Holm's strictest over {len(family)} tests):"]
    for p in family:
        n = seeds_needed(effect_points / 100, p.sd, alpha)
        n_up = seeds_needed(effect_points / 100, sd_upper(p.sd, len(p.seeds)), alpha)
        lines.append(
            f"  {p.ssl_method} vs {p.sl_method}: {_n(n)} seeds ({_n(n_up)} at the 95% upper "
            f"bound of the spread), from the sd of {len(p.seeds)} earlier paired differences, "
            f"{100 * p.sd:.1f} points of Δ"
        )
    return lines


def _n(n: int | None) -> str:
    """Words need MIN_SEEDS_FOR_WORDS seeds whatever the power."""
    return "more than 1000" if n is None else str(max(n, MIN_SEEDS_FOR_WORDS))

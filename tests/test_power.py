"""What a study could have seen: power of the paired t-test (non-central t, checked against a
simulation), the minimum detectable effect, seeds needed, and what `run --plan` says."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from test_report import make_run

from ssl_robustness.report.planning import seeds_needed_lines
from ssl_robustness.report.power import (
    min_detectable_effect,
    power,
    sd_upper,
    seeds_needed,
    tost_p,
)


def test_power_matches_a_simulated_paired_t_test():
    rng = np.random.default_rng(0)
    d = rng.normal(0.6, 1.0, (100_000, 6))
    t = d.mean(1) / (d.std(1, ddof=1) / np.sqrt(6))
    simulated = float((np.abs(t) > stats.t.ppf(1 - 0.025 / 2, 5)).mean())
    assert power(6, 0.6, 1.0, 0.025) == pytest.approx(simulated, abs=0.005)


def test_the_minimum_detectable_effect_has_the_target_power_and_seeds_needed_is_the_fewest():
    mde = min_detectable_effect(5, 0.03, 0.05)
    assert power(5, mde, 0.03, 0.05) == pytest.approx(0.8, abs=1e-6)
    n = seeds_needed(0.05, 0.03, 0.025)
    assert power(n, 0.05, 0.03, 0.025) >= 0.8 > power(n - 1, 0.05, 0.03, 0.025)
    assert sd_upper(0.03, 5) > 0.03 and sd_upper(0.03, 50) < sd_upper(0.03, 5)


def test_tost_rejects_only_inside_the_margin():
    assert tost_p(0.0, 0.01, 10, 0.02) < 0.05
    assert tost_p(0.015, 0.01, 10, 0.02) > 0.05  # mean too near the margin
    assert tost_p(0.0, 0.01, 10, 0.02) == pytest.approx(stats.t.sf(0.02 / (0.01 / 10**0.5), 9))


def test_plan_says_seeds_needed_from_earlier_results_or_that_it_cannot_know(tmp_path):
    [line] = seeds_needed_lines(tmp_path / "nothing", 5.0)
    assert line.endswith(
        f"unknown until 2 seeds have run (no earlier results in {tmp_path / 'nothing'})"
    )
    run, tables = make_run(tmp_path)
    head, pair = seeds_needed_lines(run, 5.0)
    assert head.startswith("seeds needed to detect a difference of 5 points of Δ")
    g = tables["gap_runs"].set_index(["method", "seed"])["top1_rel_gap"]
    d = np.array([g[("simclr", s)] - g[("supervised", s)] for s in range(3)])
    n = max(3, seeds_needed(0.05, float(d.std(ddof=1)), 0.05))
    assert pair.startswith(f"  simclr vs supervised: {n} seeds")

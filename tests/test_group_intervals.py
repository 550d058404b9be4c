"""Intervals over test groups (issue 31): frames of one track do not count as independent test
images; the groups' variance is added to the seeds'."""

from __future__ import annotations

import numpy as np
from scipy import stats

from ssl_robustness.report.group_intervals import (
    HeldOutGroups,
    class_draws,
    half_width,
    intervals_for,
)


def test_one_track_per_image_and_identical_tracks_bound_the_groups_variance():
    # class 0: 4 tracks of 5 frames; a track is all right or all wrong (half the tracks right)
    labels = np.zeros(20, dtype=int)
    groups = np.repeat(["a", "b", "c", "d"], 5)
    hits = np.repeat([1.0, 1.0, 0.0, 0.0], 5)[None, :]
    tg = HeldOutGroups(labels, groups, 1)
    point, boot = class_draws(hits, tg, draws=20000, seed=1)
    assert point[0, 0] == 0.5
    # resampling 4 clusters of equal size: var = p(1-p)/m = 0.25 / 4 (the 20 frames would say
    # 0.25 / 20, five times too small)
    assert abs(boot[:, 0, 0].var() - 0.25 / 4) < 0.004
    one_per_image = HeldOutGroups(labels, np.arange(20).astype(str), 1)
    _, boot_images = class_draws(hits, one_per_image, draws=20000, seed=1)
    assert abs(boot_images[:, 0, 0].var() - 0.25 / 20) < 0.001


def test_the_half_width_adds_the_seeds_and_the_groups_variances():
    per_seed = np.array([0.5, 0.6, 0.7])
    boot = np.array([0.4, 0.8] * 500)  # variance 0.04 (ddof 1: 0.04004)
    seeds, both = half_width(per_seed, boot)
    t = stats.t.ppf(0.975, 2)
    assert np.isclose(seeds, t * np.sqrt(0.01 / 3))
    a, b = 0.01 / 3, np.var(boot, ddof=1)
    df = (a + b) ** 2 * 2 / a**2  # Welch-Satterthwaite, the bootstrap part as known
    assert np.isclose(both, stats.t.ppf(0.975, df) * np.sqrt(a + b))
    assert 1.96 * np.sqrt(a + b) < both < t * np.sqrt(a + b)
    same, same_both = half_width(np.array([0.5, 0.5, 0.5]), boot)  # seeds agree: groups only
    assert same == 0 and np.isclose(same_both, 1.96 * np.sqrt(np.var(boot, ddof=1)))
    lone, lone_both = half_width(np.array([0.5]), boot)
    assert np.isnan(lone) and np.isclose(lone_both, 1.96 * np.sqrt(np.var(boot, ddof=1)))


def test_tiers_and_classes_with_their_test_groups():
    labels = np.array([0] * 6 + [1] * 6)
    groups = np.array(["a"] * 3 + ["b"] * 3 + ["c", "d", "e", "f", "g", "h"])
    hits = np.array([[1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]])
    tiers = np.array([["head", "tail"], ["head", "tail"]])
    rows = {
        r["level"]: r
        for r in intervals_for(hits, tiers, HeldOutGroups(labels, groups, 2), ["x", "y"])
    }
    assert rows["head"]["test_groups"] == 2 and rows["tail"]["test_groups"] == 6
    assert np.isclose(rows["x"]["mean"], (0.5 + 1.0) / 2)
    assert np.isclose(rows["tail"]["mean"], (4 / 6 + 3 / 6) / 2)
    # never narrower than the seeds alone; wider where the groups vary
    for r in rows.values():
        assert r["seeds_and_groups_ci95"] >= r["seeds_ci95"]


def test_the_report_sentences_name_both_intervals_and_the_groups():
    import pandas as pd

    from ssl_robustness.report.group_intervals import group_interval_lines

    table = pd.DataFrame(
        [
            {
                "method": "simclr",
                "subset": "natural",
                "evaluation": "linear-balanced",
                "comparison": "pretraining",
                "level": "tail",
                "mean": 0.61,
                "seeds_ci95": 0.041,
                "seeds_and_groups_ci95": 0.123,
                "test_groups": 14,
            },
            {
                "method": "simclr",
                "subset": "natural",
                "evaluation": "linear-balanced",
                "comparison": "pretraining",
                "level": "class_3",
                "mean": 0.5,
                "seeds_ci95": 0.1,
                "seeds_and_groups_ci95": 0.2,
                "test_groups": 3,
            },
        ]
    )
    lines = group_interval_lines(table, ("linear-balanced", "pretraining"))
    assert lines[1:] == [
        "simclr (natural), tail: 61.0% ± 4.1 over seeds, ± 12.3 with its 14 test groups resampled."
    ]
    assert group_interval_lines(table, ("knn-k10", "pretraining")) == []
    assert group_interval_lines(None, ("linear-balanced", "pretraining")) == []

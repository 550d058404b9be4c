"""Intervals over test groups (issue 31): frames of one track do not count as independent test
images; the groups' variance is added to the seeds'."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
    # 4 clusters of equal size: the unbiased variance of their mean is s^2 / m with s^2 the
    # clusters' sample variance (ddof 1: 1/3), so 1/12 = 0.25 / 3; the plain bootstrap gives
    # (m-1)/m of it (0.25 / 4) and the 20 frames as images would say 0.25 / 19
    assert abs(boot[:, 0, 0].var() - 0.25 / 3) < 0.005
    one_per_image = HeldOutGroups(labels, np.arange(20).astype(str), 1)
    _, boot_images = class_draws(hits, one_per_image, draws=20000, seed=1)
    assert abs(boot_images[:, 0, 0].var() - 0.25 / 19) < 0.001
    # one test group: nothing to resample, no variance (and no interval: the next tests)
    _, boot_one = class_draws(hits, HeldOutGroups(labels, np.repeat(["a"], 20), 1), draws=50)
    assert np.all(boot_one[:, 0, 0] == 0.5)


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


def test_one_group_classes_and_tiers_that_change_by_seed_are_said():
    """A class of one test group gets no interval over groups (its variance is unknowable, not
    zero); a tier whose classes differ between seeds counts its groups in every seed, and a tier
    empty in a seed is averaged over the seeds that hold it."""
    from ssl_robustness.report.group_intervals import _tier_sentence

    labels = np.array([0] * 4 + [1] * 6 + [2] * 2)
    groups = np.array(["a"] * 4 + ["b", "c", "d", "e", "f", "g"] + ["h", "i"])
    hits = np.array([[1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1]])
    tiers = np.array([["head", "tail", "tail"], ["tail", "tail", "head"]])
    rows = {
        r["level"]: r
        for r in intervals_for(hits, tiers, HeldOutGroups(labels, groups, 3), ["x", "y", "z"])
    }
    assert np.isnan(rows["x"]["seeds_and_groups_ci95"]) and rows["x"]["test_groups"] == 1
    # the tail: y and z (6 + 2 groups) in seed 0, x and y (1 + 6) in seed 1
    assert (rows["tail"]["test_groups_min"], rows["tail"]["test_groups"]) == (7, 8)
    assert rows["tail"]["one_group_classes"] == 1  # x, in the tail of seed 1
    row = pd.Series({**rows["tail"], "method": "simclr", "subset": "natural", "seeds": 2})
    text = _tier_sentence(row)
    assert "with its 7-8 test groups (by seed) resampled (the groups alone ±" in text
    assert text.endswith(
        "; 1 of its classes hold one test group each, which adds no group variance."
    )
    medium = pd.Series({**rows["head"], "method": "m", "subset": "s", "seeds": 3, "tier_seeds": 2})
    assert _tier_sentence(medium).endswith("; over the 2 of 3 seeds where the tier holds a class.")

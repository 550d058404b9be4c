"""Intervals that count test images by the groups they come from (`data.group_by`).

Twenty frames of one video track are not twenty independent test images: a per-class or tail
accuracy over a few tracks varies with which tracks the test set drew far more than an
interval over seeds shows (the test set is the same in every seed, so seeds cannot see it).
Here the test set's groups are resampled (a cluster bootstrap, stratified by class: each class
keeps its number of test groups) and that variance is added to the seeds' own:

    half-width = t(df) * sqrt(var_seeds / S + var_groups)

df by Welch-Satterthwaite: S - 1 for the seeds' part, the bootstrap's part taken as known
(so t(S-1) where the seeds dominate, about 1.96 where the groups do).
var_groups: the bootstrap variance of the seed-mean accuracy when each draw resamples the test
groups once for all seeds (the same test set is shared by every seed), each class's draws
scaled by m / (m - 1) in variance (m: its test groups; the plain bootstrap's variance of a mean
of m clusters is (m - 1) / m of the unbiased one, a third too small at m = 4). A class of one
test group has no group variance to estimate: its own interval is not given, and a tier holding
such classes says how many add none. With one seed only the groups' part is given (z = 1.96).
The two parts are taken as independent: training randomness does not choose the test set. The
combined half-width is never narrower than the seeds' alone; the groups' alone is given beside
it, so a floor that binds does not read as "the groups add nothing".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..data.subsets.tiers import TIER_NAMES

DRAWS = 2000
GROUP_INTERVALS = "test_group_intervals"  # tables/<this>.csv


@dataclass(frozen=True)
class HeldOutGroups:
    """The fixed test set's labels and group ids, and how each class's groups are indexed."""

    labels: np.ndarray
    groups: np.ndarray
    num_classes: int

    def class_clusters(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(cluster index per test image of class c, images per cluster)."""
        mask = self.labels == c
        _, inverse, sizes = np.unique(self.groups[mask], return_inverse=True, return_counts=True)
        return inverse, sizes


def class_draws(
    hits: np.ndarray, tg: HeldOutGroups, draws: int = DRAWS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(accuracy per seed and class (S, C), the same under each bootstrap draw (B, S, C)).

    `hits`: (S, N) correct-or-not of every test image in every seed."""
    rng = np.random.default_rng(seed)
    n_seeds = hits.shape[0]
    point = np.full((n_seeds, tg.num_classes), np.nan)
    boot = np.full((draws, n_seeds, tg.num_classes), np.nan)
    for c in range(tg.num_classes):
        mask = tg.labels == c
        if not mask.any():
            continue
        inverse, sizes = tg.class_clusters(c)
        m = len(sizes)
        sums = np.stack([np.bincount(inverse, weights=h[mask], minlength=m) for h in hits])
        point[:, c] = sums.sum(1) / sizes.sum()
        weights = rng.multinomial(m, np.full(m, 1 / m), size=draws)  # (B, m)
        drawn = (weights @ sums.T) / (weights @ sizes)[:, None]
        # the unbiased variance of a mean of m clusters: scale the deviations by sqrt(m/(m-1))
        scale = np.sqrt(m / (m - 1)) if m > 1 else 0.0
        boot[:, :, c] = point[:, c] + scale * (drawn - point[:, c])
    return point, boot


def half_width(per_seed: np.ndarray, boot_seed_mean: np.ndarray) -> tuple[float, float]:
    """(seeds-only half-width, seeds-and-groups half-width) of a 95% interval."""
    s = len(per_seed)
    var_groups = float(np.nanvar(boot_seed_mean, ddof=1))
    if s < 2:
        return float("nan"), 1.96 * np.sqrt(var_groups)
    var_seeds = float(np.var(per_seed, ddof=1)) / s
    seeds_only = stats.t.ppf(0.975, s - 1) * np.sqrt(var_seeds)
    if var_seeds == 0:
        return seeds_only, 1.96 * np.sqrt(var_groups)
    # Welch-Satterthwaite: the seeds' part has s - 1 degrees of freedom, the bootstrap's many
    df = (var_seeds + var_groups) ** 2 * (s - 1) / var_seeds**2
    both = stats.t.ppf(0.975, df) * np.sqrt(var_seeds + var_groups)
    return seeds_only, max(both, seeds_only)  # more variance never narrows the interval


def intervals_for(
    hits: np.ndarray, tiers: np.ndarray, tg: HeldOutGroups, class_names: list[str], seed: int = 0
) -> list[dict[str, object]]:
    """Rows for one evaluation of one arm: each frequency tier and each class, with its mean
    over seeds, both half-widths and its number of test groups. `tiers`: (S, C) tier names."""
    point, boot = class_draws(hits, tg, seed=seed)
    m = np.array([len(tg.class_clusters(c)[1]) for c in range(tg.num_classes)])
    rows = []
    for tier in TIER_NAMES:
        members = tiers == tier  # (S, C): a class's tier may differ between seeds
        present = [s for s in range(len(point)) if members[s].any()]  # a tier may be empty
        if not present:
            continue
        per_seed = np.array([np.nanmean(point[s, members[s]]) for s in present])
        per_draw = np.stack(
            [np.nanmean(boot[:, s, members[s]], axis=1) for s in present], axis=1
        ).mean(1)
        seeds_half, both_half = half_width(per_seed, per_draw)
        counts = [int(m[members[s]].sum()) for s in present]
        single = int(((m < 2) & members[present].any(axis=0)).sum())
        rows.append(
            _row(tier, per_seed, seeds_half, both_half, per_draw, counts, single, len(present))
        )
    for c, name in enumerate(class_names):
        seeds_half, both_half = half_width(point[:, c], boot[:, :, c].mean(1))
        if m[c] < 2:  # one test group: nothing to resample, no interval over groups
            both_half = np.nan
        draws = boot[:, :, c].mean(1) if m[c] >= 2 else np.full(1, np.nan)
        rows.append(
            _row(name, point[:, c], seeds_half, both_half, draws, [int(m[c])], 0, len(point))
        )
    return rows


def _row(
    level: str,
    per_seed: np.ndarray,
    seeds: float,
    both: float,
    per_draw: np.ndarray,
    groups: list[int],
    single: int,
    n_seeds: int,
) -> dict:
    spread = np.nanvar(per_draw, ddof=1) if np.isfinite(per_draw).sum() > 1 else np.nan
    return {
        "level": level,
        "mean": float(np.mean(per_seed)),
        "seeds_ci95": seeds,
        "seeds_and_groups_ci95": both,
        "groups_ci95": float(1.96 * np.sqrt(spread)),
        "test_groups": int(max(groups)),
        "test_groups_min": int(min(groups)),  # a tier's classes may differ between seeds
        "one_group_classes": single,  # classes of one test group: no group variance
        "tier_seeds": n_seeds,  # seeds where the tier holds a class
    }


def group_interval_table(
    hits_by_key: dict[tuple, tuple[np.ndarray, np.ndarray]],
    tg: HeldOutGroups,
    class_names: list[str],
    keys: list[str],
) -> pd.DataFrame:
    """One table for every (scenario, method, subset, evaluation, comparison): `hits_by_key`
    maps each to (hits (S, N), tiers (S, C))."""
    rows = []
    for i, (key, (hits, tiers)) in enumerate(sorted(hits_by_key.items(), key=str)):
        for row in intervals_for(hits, tiers, tg, class_names, seed=i):
            rows.append({**dict(zip(keys, key, strict=True)), "seeds": len(hits), **row})
    return pd.DataFrame(rows)


def group_interval_lines(table: pd.DataFrame | None, headline: tuple[str, str] | None) -> list[str]:
    """The report's sentences: each arm's tier accuracies on the headline evaluation with the
    interval over seeds and the wider one that resamples the test groups."""
    if table is None or table.empty or headline is None:
        return []
    rows = table[
        (table["evaluation"] == headline[0])
        & (table["comparison"] == headline[1])
        & table["level"].isin(TIER_NAMES)
    ]
    if rows.empty:
        return []
    lines = [
        f"Accuracy by frequency tier on {headline[0]}, counting the test images by their "
        "data.group_by groups (a cluster bootstrap over test groups added to the seeds' "
        "variance; per class in tables/test_group_intervals.csv):"
    ]
    for _, r in rows.iterrows():
        lines.append(_tier_sentence(r))
    return lines


def _tier_sentence(r: pd.Series) -> str:
    seeds = (
        f"± {100 * r['seeds_ci95']:.1f} over seeds" if np.isfinite(r["seeds_ci95"]) else "1 seed"
    )
    low, high = int(r.get("test_groups_min", r["test_groups"])), int(r["test_groups"])
    groups = f"{low}-{high} test groups (by seed)" if low != high else f"{high} test groups"
    text = (
        f"{r['method']} ({r['subset']}), {r['level']}: {100 * r['mean']:.1f}% {seeds}, "
        f"± {100 * r['seeds_and_groups_ci95']:.1f} with its {groups} resampled"
    )
    alone = r.get("groups_ci95", np.nan)
    if np.isfinite(alone):
        text += f" (the groups alone ± {100 * alone:.1f})"
    single = int(r.get("one_group_classes", 0) or 0)
    if single:
        text += f"; {single} of its classes hold one test group each, which adds no group variance"
    shown = int(r.get("tier_seeds", r.get("seeds", 0)) or 0)
    if shown and "seeds" in r and shown < int(r["seeds"]):
        text += f"; over the {shown} of {int(r['seeds'])} seeds where the tier holds a class"
    return text + "."

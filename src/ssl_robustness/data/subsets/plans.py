"""Matched, nested pretraining subsets D(n, r) and D(n, 1).

Within a class every subset takes a prefix of one fixed seeded order, so subsets of the same
class differ only in how many images they keep, never in which.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...config import ImbalanceConfig
from ...errors import UserError
from .profiles import allocate, counts_from_n_max, shape_weights


@dataclass(frozen=True)
class SubsetPlan:
    """One pretraining subset: its name, imbalance level and per-class counts (class order)."""

    name: str
    level: float
    balanced: bool
    counts: np.ndarray
    matched: bool = True  # False: the full natural pool, with no same-size balanced twin

    @property
    def size(self) -> int:
        return int(self.counts.sum())


EQUAL_POOL_TOLERANCE = 0.1  # pools within 10% of each other count as equal for `class_order: auto`


@dataclass(frozen=True)
class ClassOrder:
    """How the classes are ranked for the long tail, resolved against the pool: `order` is
    frequency, random or index; `per_seed` whether every study seed draws its own."""

    order: str
    per_seed: bool
    why: str


def resolve_class_order(cfg: ImbalanceConfig, pool_counts: np.ndarray) -> ClassOrder:
    """Which classes become rare. On a pool whose classes are (nearly) equally large,
    "frequency" is index order in disguise: the same classes would be rare in every seed and
    "the rare classes pay" could not be told from "these classes are hard". So `auto` draws
    the order anew per seed there, and keeps the data's own frequency order on natural data.

    >>> cfg = ImbalanceConfig()
    >>> resolve_class_order(cfg, np.array([300, 300, 290])).order
    'random'
    >>> resolve_class_order(cfg, np.array([900, 300, 40])).order
    'frequency'
    """
    counts = np.asarray(pool_counts, dtype=np.float64)
    if cfg.profile in ("power", "natural"):
        return ClassOrder("frequency", False, "the data's own frequency (natural/power profile)")
    if cfg.class_order == "auto":
        low, high = float(counts.min()), float(counts.max())
        if high <= (1 + EQUAL_POOL_TOLERANCE) * low:
            equal = f"the pool's classes are equally large ({low:.0f}..{high:.0f}, within "
            equal += f"{EQUAL_POOL_TOLERANCE:.0%})"
            if not cfg.resample_per_seed:  # fixed draws fix which classes are rare as well
                return ClassOrder("random", False, f"random, the same in every seed: {equal}")
            return ClassOrder("random", True, f"drawn anew for every seed: {equal}")
        return ClassOrder(
            "frequency", False, f"the pool's own frequency ({low:.0f}..{high:.0f} per class)"
        )
    if cfg.class_order == "random":
        per_seed = cfg.class_order_per_seed
        return ClassOrder(
            "random", per_seed, "random, drawn anew for every seed" if per_seed else "random, fixed"
        )
    why = f"{cfg.class_order}, the same in every seed"
    if cfg.class_order == "frequency" and counts.max() <= (1 + EQUAL_POOL_TOLERANCE) * counts.min():
        why += " (the pool's classes are equally large, so this is index order in disguise)"
    return ClassOrder(cfg.class_order, False, why)


def worst_case_pool(pool_counts: np.ndarray) -> np.ndarray:
    """Every class's pool as large as the smallest: the plan it gives fits whichever class
    lands on which rank, so where each seed draws the order, n and the counts by rank are the
    same in every seed (pools within EQUAL_POOL_TOLERANCE lose at most that share).

    >>> worst_case_pool(np.array([300, 290, 280])).tolist()
    [280, 280, 280]
    """
    counts = np.asarray(pool_counts, dtype=np.int64)
    return np.full_like(counts, counts.min())


def class_rank_order(pool_counts: np.ndarray, order: str, seed: int) -> np.ndarray:
    """Classes in rank order: rank 0 keeps the most images."""
    c = len(pool_counts)
    if order == "index":
        return np.arange(c)
    if order == "random":
        return np.random.default_rng([seed, 7919]).permutation(c)
    return np.lexsort((np.arange(c), -np.asarray(pool_counts)))  # frequency, ties by index


def level_name(profile: str, level: float, balanced: bool) -> str:
    if balanced:
        return "balanced"
    if profile in ("power", "natural"):
        return "natural" if profile == "natural" else f"power-a{level:g}"
    return f"{profile}-r{level:g}"


def plan_subsets(
    pool_counts: np.ndarray,
    cfg: ImbalanceConfig,
    class_names: list[str] | None = None,
    *,
    natural_counts: np.ndarray | None = None,
    order_seed: int | None = None,
) -> list[SubsetPlan]:
    """Per-class counts of every subset, all of the same size n; the balanced one first.

    `pool_counts` is what each class can give to pretraining; `natural_counts` (default: the
    same) sets the shape of `power`/`natural` profiles; `order_seed` (default
    `cfg.seed`) draws a `random` class order.
    """
    pool_counts = np.asarray(pool_counts, dtype=np.int64)
    natural_counts = pool_counts if natural_counts is None else np.asarray(natural_counts)
    c = len(pool_counts)
    names = class_names or [str(i) for i in range(c)]
    natural = cfg.profile in ("power", "natural")
    ranks = class_rank_order(
        pool_counts,
        resolve_class_order(cfg, natural_counts).order,
        cfg.seed if order_seed is None else order_seed,
    )
    ranked_pool = pool_counts[ranks]
    levels = cfg.levels()
    balanced_level = levels[0]
    weights = {
        lv: (
            np.ones(c)
            if lv == balanced_level
            else shape_weights(
                cfg.profile, c, lv, pareto_alpha=cfg.pareto_alpha, natural_counts=natural_counts
            )
        )
        for lv in levels
    }
    exact: dict[float, np.ndarray] = {}
    if cfg.n is not None:
        n = cfg.n
    elif natural:
        n = _largest_feasible_total(weights.values(), ranked_pool)
    else:
        most = min(levels)
        n_max = cfg.n_max or int(
            min(np.floor(ranked_pool / weights[most] + 1e-9).min(), ranked_pool[0])
        )
        exact[most] = counts_from_n_max(weights[most], n_max)
        n = int(exact[most].sum())
        if cfg.n_max is None and any(
            (allocate(w, n) > ranked_pool).any() for w in weights.values()
        ):
            # unequal pools: the balanced set (or a milder level) cannot take n; the largest
            # total every level can take, instead of an error the user did not ask for
            n, exact = _largest_feasible_total(weights.values(), ranked_pool), {}
    plans = []
    for lv in levels:
        ranked = exact.get(lv)
        if ranked is None:
            ranked = allocate(weights[lv], n)
        counts = np.zeros(c, dtype=np.int64)
        counts[ranks] = ranked
        is_bal = lv == balanced_level
        plan = SubsetPlan(level_name(cfg.profile, lv, is_bal), float(lv), is_bal, counts)
        _check_feasible(plan, pool_counts, names, natural and cfg.n is None)
        plans.append(plan)
    if cfg.full_natural:
        plans.append(SubsetPlan("natural-full", 1.0, False, pool_counts.copy(), matched=False))
    return plans


def _largest_feasible_total(weight_sets, ranked_pool: np.ndarray) -> int:
    total = None
    for w in weight_sets:
        t = int(np.floor((ranked_pool * w.sum() / w).min() + 1e-9))
        while t > 0 and (allocate(w, t) > ranked_pool).any():
            t -= 1
        total = t if total is None else min(total, t)
    return int(total or 0)


def _check_feasible(
    plan: SubsetPlan, pool_counts: np.ndarray, names: list[str], n_from_pool: bool = False
) -> None:
    """Every class gets at least one image and no more than its pool holds.

    `n_from_pool`: n was derived from the smallest class (natural/power without n), so
    raising n is no way out; the caller offers class filters instead."""
    if plan.size == 0:
        raise UserError(f"data.imbalance: subset '{plan.name}' would be empty")
    short = np.flatnonzero(plan.counts > pool_counts)
    if len(short):
        i = short[0]
        raise UserError(
            f"data.imbalance: subset '{plan.name}' (n={plan.size}) asks for {plan.counts[i]} "
            f"images of class '{names[i]}' but its training pool has {pool_counts[i]} "
            f"({len(short)} class(es) short); lower data.imbalance.n or n_max"
        )
    if (plan.counts == 0).any():
        i = int(np.flatnonzero(plan.counts == 0)[0])
        advice = (
            f"n={plan.size}, bounded by {len(names)} classes x the smallest class, is too "
            "small for this shape to give it one image"
            if n_from_pool
            else "raise data.imbalance.n or the ratio"
        )
        raise UserError(
            f"data.imbalance: subset '{plan.name}' keeps no image of class '{names[i]}'; {advice}"
        )


def per_class_order(
    labels: np.ndarray,
    pool: np.ndarray,
    num_classes: int,
    seed: int | list[int],
    class_ids: np.ndarray | None = None,
) -> list[np.ndarray]:
    """For each class, its pool item indices in one fixed seeded order (shared by all subsets).

    `class_ids`: each class's index in the unfiltered listing (default: its label), which
    seeds its order, so a class filter leaves the kept classes' orders as they were."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    ids = np.arange(num_classes) if class_ids is None else np.asarray(class_ids)
    out = []
    for k in range(num_classes):
        members = pool[labels[pool] == k]
        rng = np.random.default_rng([*seeds, int(ids[k])])
        out.append(rng.permutation(np.sort(members)))
    return out


def draw(order: list[np.ndarray], counts: np.ndarray) -> np.ndarray:
    """Item indices of a subset: the first counts[k] of class k's fixed order, sorted."""
    return np.sort(np.concatenate([o[: int(n)] for o, n in zip(order, counts, strict=True)]))

"""Which classes are rare: on a pool of equally large classes, `class_order: auto` (the
default) draws them anew for every seed, so "the rare classes pay" is not "these classes are
hard"; natural data keeps its own frequency order."""

from __future__ import annotations

import numpy as np

from conftest import tiny_study
from ssl_robustness.config import ImbalanceConfig, validate_config
from ssl_robustness.data.prepare import prepare_data
from ssl_robustness.data.subsets.plans import plan_subsets, resolve_class_order


def _rarest(cfg: ImbalanceConfig, counts: np.ndarray, order_seed: int) -> int:
    plans = plan_subsets(counts, cfg, order_seed=order_seed)
    main = next(p for p in plans if not p.balanced)
    return int(np.argmin(main.counts))


def test_equal_pools_draw_the_rare_classes_per_seed():
    cfg = ImbalanceConfig(profile="exp", ratio=0.1, n=500)
    counts = np.full(10, 300)
    order = resolve_class_order(cfg, counts)
    assert (order.order, order.per_seed) == ("random", True)
    rarest = {_rarest(cfg, counts, seed) for seed in range(8)}
    assert len(rarest) >= 4  # fixed index order would give {9} in every seed


def test_unequal_pools_keep_their_frequency_order():
    cfg = ImbalanceConfig(profile="exp", ratio=0.1, n=300)
    counts = np.array([900, 700, 500, 400, 300, 250, 200, 150, 120, 100])
    order = resolve_class_order(cfg, counts)
    assert (order.order, order.per_seed) == ("frequency", False)
    assert {_rarest(cfg, counts, seed) for seed in range(5)} == {9}


def test_within_the_tolerance_counts_as_equal_and_beyond_it_does_not():
    cfg = ImbalanceConfig()
    assert resolve_class_order(cfg, np.array([110, 100, 105])).per_seed
    assert not resolve_class_order(cfg, np.array([111, 100, 105])).per_seed


def test_an_explicit_frequency_order_is_kept_and_says_what_it_means_on_equal_pools():
    cfg = ImbalanceConfig(class_order="frequency")
    order = resolve_class_order(cfg, np.full(4, 50))
    assert (order.order, order.per_seed) == ("frequency", False)
    assert "index order in disguise" in order.why


def test_a_study_on_the_digits_records_different_tail_classes_per_seed(tmp_path):
    cfg = validate_config(tiny_study(tmp_path, seeds=[0, 1, 2, 3]))
    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    assert data.class_order.per_seed
    tails = {tuple(np.flatnonzero(data.draw(s).tiers == "tail")) for s in cfg.seeds}
    assert len(tails) > 1
    for s in cfg.seeds:  # the imbalanced subset's counts follow that seed's own order
        main = data.draw(s).plans[1]
        assert sorted(main.counts.tolist()) == sorted(data.draw(0).plans[1].counts.tolist())
    assert "which classes are rare" in __import__(
        "ssl_robustness.data.stats", fromlist=["interval_covers"]
    ).interval_covers(data)


def test_a_per_seed_order_keeps_n_and_the_probe_set_the_same_in_every_seed(tmp_path, monkeypatch):
    """The digits' pools differ by a few images (within the tolerance): the plan is made for
    the smallest pool, so n is matched across seeds and fits whichever class is the head."""
    from ssl_robustness.data import study_data
    from ssl_robustness.data.split import probe
    from ssl_robustness.data.subsets import plans

    raw = tiny_study(tmp_path, seeds=[0, 1, 2, 3])
    raw["data"]["imbalance"] = {"profile": "exp", "ratio": 0.1}  # n from the pool
    cfg = validate_config(raw)
    data = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    pool = data.class_counts(data.pretrain_pool)
    assert data.class_order.per_seed and pool.min() < pool.max()
    sizes = {tuple(p.size for p in data.draw(s).plans) for s in cfg.seeds}
    assert len(sizes) == 1
    for s in cfg.seeds:
        assert all((p.counts <= pool).all() for p in data.draw(s).plans)
    # the old plan, from each seed's own ranked pool, gave n that varied with the order
    monkeypatch.setattr(study_data, "worst_case_pool", lambda c: c)
    monkeypatch.setattr(probe, "worst_case_pool", lambda c: c)
    monkeypatch.setattr(plans, "worst_case_pool", lambda c: c)
    old = prepare_data(cfg.data, cfg.layout.data.path, cfg.evaluation, cfg.seeds)
    assert len({tuple(p.size for p in old.draw(s).plans) for s in cfg.seeds}) > 1

import numpy as np
import pytest

from ssl_robustness.config import ImbalanceConfig
from ssl_robustness.data.subsets.plans import draw, per_class_order, plan_subsets
from ssl_robustness.data.subsets.profiles import allocate, counts_from_n_max, gini, shape_weights
from ssl_robustness.errors import UserError


def test_cifar10_exp_001_gives_12406_images():
    counts = counts_from_n_max(shape_weights("exp", 10, 0.01), 5000)
    assert counts.tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert counts.sum() == 12406


def test_cifar10_exp_01_and_step():
    assert counts_from_n_max(shape_weights("exp", 10, 0.1), 5000).sum() == 20431
    step = counts_from_n_max(shape_weights("step", 10, 0.01), 5000)
    assert step.tolist() == [5000] * 5 + [50] * 5


def test_pareto_hits_the_ratio_and_decreases():
    w = shape_weights("pareto", 100, 5 / 1280, pareto_alpha=6)
    counts = counts_from_n_max(w, 1280)
    assert counts[0] == 1280 and counts[-1] == 5
    assert (np.diff(counts) <= 0).all()


def test_power_profile_interpolates_balanced_to_natural():
    natural = np.array([400, 100, 25])
    assert np.allclose(shape_weights("power", 3, 0.0, natural_counts=natural), 1)
    assert np.allclose(shape_weights("power", 3, 1.0, natural_counts=natural), [1, 0.25, 1 / 16])
    assert np.allclose(shape_weights("power", 3, 0.5, natural_counts=natural), [1, 0.5, 0.25])


def test_allocate_is_exact_and_largest_remainder():
    assert allocate(np.array([1, 1, 1]), 10).tolist() == [4, 3, 3]
    assert allocate(np.array([0.5, 0.3, 0.2]), 7).tolist() == [4, 2, 1]  # 3.5, 2.1, 1.4
    assert allocate(np.ones(10), 12406).sum() == 12406


def test_gini_hand_values():
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    # [0, 0, 0, 1]: sum |xi - xj| = 6, 2 n^2 mean = 2 * 16 * 0.25 = 8 -> 0.75
    assert gini(np.array([0, 0, 0, 1])) == pytest.approx(0.75)
    assert gini(np.array([1, 3])) == pytest.approx(0.25)  # |1-3|*2 / (2*4*2)


def test_matched_subsets_have_the_same_size_and_exact_counts():
    pool = np.full(10, 5000)
    plans = plan_subsets(
        pool, ImbalanceConfig(profile="exp", ratio=0.01, sweep=[0.1], class_order="frequency")
    )
    assert [p.name for p in plans] == ["balanced", "exp-r0.01", "exp-r0.1"]
    assert [p.size for p in plans] == [12406, 12406, 12406]
    assert plans[0].counts.tolist() == [1241] * 6 + [1240] * 4
    assert plans[1].counts.tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_class_order_frequency_gives_largest_class_the_head():
    pool = np.array([50, 300, 100])
    plans = plan_subsets(pool, ImbalanceConfig(profile="exp", ratio=0.1, n=150))
    imb = plans[1].counts
    assert imb.argmax() == 1 and imb.argmin() == 0 and imb.sum() == 150


def test_random_class_order_is_seeded():
    pool = np.full(6, 100)
    a = plan_subsets(pool, ImbalanceConfig(ratio=0.1, class_order="random", seed=3))[1].counts
    b = plan_subsets(pool, ImbalanceConfig(ratio=0.1, class_order="random", seed=3))[1].counts
    c = plan_subsets(pool, ImbalanceConfig(ratio=0.1, class_order="random", seed=4))[1].counts
    assert (a == b).all() and not (a == c).all()


def test_power_sweep_matched_total_is_feasible():
    pool = np.array([1645, 700, 300, 100])
    plans = plan_subsets(pool, ImbalanceConfig(profile="power", exponent=1.0, sweep=[0.5]))
    sizes = {p.size for p in plans}
    assert len(sizes) == 1 and sizes.pop() == 400  # balanced needs 100 per class at most
    assert all((p.counts <= pool).all() for p in plans)
    natural = plan_subsets(pool, ImbalanceConfig(profile="natural"))
    assert [p.name for p in natural] == ["balanced", "natural"]


def test_request_the_data_cannot_meet_is_an_error():
    with pytest.raises(
        UserError, match=r"asks for .* images of class 'b' but its training pool has 20"
    ):
        plan_subsets(np.array([100, 20]), ImbalanceConfig(ratio=0.5, n=100), ["a", "b"])
    with pytest.raises(UserError, match="keeps no image"):
        plan_subsets(np.array([100, 100, 100]), ImbalanceConfig(ratio=0.01, n=50))


def test_subsets_are_nested_prefixes_of_one_order():
    labels = np.repeat(np.arange(3), 40)
    pool = np.arange(120)
    order = per_class_order(labels, pool, 3, seed=0)
    small = draw(order, np.array([10, 5, 2]))
    large = draw(order, np.array([20, 5, 30]))
    assert set(small) <= set(large)
    assert np.bincount(labels[small]).tolist() == [10, 5, 2]
    again = draw(per_class_order(labels, pool, 3, seed=0), np.array([10, 5, 2]))
    assert (again == small).all()

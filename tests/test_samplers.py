import numpy as np

from ssl_robustness.data.samplers import class_draws, epoch_order


def test_class_draw_counts_are_exact():
    counts = np.array([90, 9, 1])
    assert class_draws(counts, "instance").tolist() == [90, 9, 1]
    assert class_draws(counts, "class_balanced").tolist() == [34, 33, 33]
    # sqrt: weights 9.487, 3, 1 -> 100 * w / 13.487 = 70.34, 22.24, 7.41 -> 70, 22, 7 (+1 to .41)
    assert class_draws(counts, "sqrt").tolist() == [70, 22, 8]


def test_epoch_orders_realise_those_counts():
    labels = np.repeat([0, 1, 2], [90, 9, 1])
    rng = np.random.default_rng(0)
    for kind, expected in (
        ("instance", [90, 9, 1]),
        ("class_balanced", [34, 33, 33]),
        ("sqrt", [70, 22, 8]),
    ):
        order = epoch_order(labels, kind, rng, 3)
        assert len(order) == 100
        assert np.bincount(labels[order], minlength=3).tolist() == expected
    inst = epoch_order(labels, "instance", np.random.default_rng(1))
    assert sorted(inst.tolist()) == list(range(100))


def test_class_balanced_cycles_through_every_member_before_repeating():
    labels = np.repeat([0, 1], [30, 3])
    order = epoch_order(labels, "class_balanced", np.random.default_rng(0), 2)
    minority = order[labels[order] == 1]
    assert len(minority) == 16
    assert np.bincount(minority - 30).tolist() in ([6, 5, 5], [5, 6, 5], [5, 5, 6])

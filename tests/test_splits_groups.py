import numpy as np
import pytest

from ssl_robustness.config import SplitConfig
from ssl_robustness.data.listing.labelled import LabelledSet
from ssl_robustness.data.split.splits import make_splits
from ssl_robustness.data.subsets.tiers import assign_tiers, oltr_tiers, thirds_tiers
from ssl_robustness.errors import UserError


def _lset(counts, official=None):
    labels = np.repeat(np.arange(len(counts)), counts)
    return LabelledSet(
        [f"i{i}" for i in range(len(labels))],
        labels,
        [f"c{k}" for k in range(len(counts))],
        official_split=official,
    )


def test_carved_val_and_test_are_balanced_and_seeded():
    lset = _lset([30, 20, 12])
    split = make_splits(lset, SplitConfig(val_per_class=3, test_per_class=5, seed=1))
    for name, k in (("test", 5), ("val", 3)):
        assert np.bincount(lset.labels[split == name]).tolist() == [k, k, k]
    assert np.bincount(lset.labels[split == "train"]).tolist() == [22, 12, 4]
    again = make_splits(lset, SplitConfig(val_per_class=3, test_per_class=5, seed=1))
    assert (again == split).all()


def test_official_test_is_kept_and_val_carved_from_train():
    official = np.array(["train"] * 20 + ["test"] * 4, dtype=object)
    lset = LabelledSet(
        [f"i{i}" for i in range(24)], np.array([0, 1] * 12), ["a", "b"], official_split=official
    )
    split = make_splits(lset, SplitConfig(val_per_class=2, test_per_class=7))
    assert (split[20:] == "test").all() and (split == "test").sum() == 4
    assert np.bincount(lset.labels[split == "val"]).tolist() == [2, 2]


def test_class_too_small_for_the_split_is_an_error():
    with pytest.raises(UserError) as err:
        make_splits(_lset([30, 6, 5]), SplitConfig(val_per_class=2, test_per_class=5))
    text = str(err.value)
    assert "2 of 3 classes cannot give test_per_class=5 and val_per_class=2" in text
    # every class at fault, with what it can give (6 - 2 val - 1 training = 3; 5 -> 2)
    assert "'c1': can give test_per_class=3 (it has 6 training images)" in text
    assert "'c2': can give test_per_class=2 (it has 5 training images)" in text
    assert "data.split.test_per_class: 2 (the largest every class can give" in text
    assert "data.split.val_per_class: 1" not in text  # val alone cannot save c1 (5+1+1 > 6)


def test_oltr_thresholds():
    assert oltr_tiers(np.array([500, 101, 100, 20, 19, 1])).tolist() == [
        "head",
        "head",
        "medium",
        "medium",
        "tail",
        "tail",
    ]


def test_thirds_split_sorted_classes():
    counts = np.array([5, 50, 10, 40, 30, 20, 1])
    # sorted desc: 50(1) 40(3) 30(4) | 20(5) 10(2) | 5(0) 1(6)
    assert thirds_tiers(counts).tolist() == [
        "tail",
        "head",
        "medium",
        "head",
        "head",
        "medium",
        "tail",
    ]


def test_auto_falls_back_to_thirds_when_a_group_is_empty():
    cifar_lt = np.array([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
    rule, groups = assign_tiers(cifar_lt, "auto")
    assert rule == "thirds" and (groups == "tail").sum() == 3
    rule, groups = assign_tiers(np.array([500, 50, 5]), "auto")
    assert rule == "oltr" and groups.tolist() == ["head", "medium", "tail"]
    rule, _ = assign_tiers(cifar_lt, "oltr")
    assert rule == "oltr"

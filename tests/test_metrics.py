import math

import numpy as np
import pandas as pd
import pytest

from ssl_robustness.evaluation.metrics import (
    classification_metrics,
    confusion,
    gap,
    per_class_accuracy,
    seed_summary,
    tier_accuracy,
    top_classes,
    topk_accuracy,
    topk_hits,
)
from ssl_robustness.evaluation.outputs import saved_prediction_metrics


def _scores(preds, num_classes):
    s = np.zeros((len(preds), num_classes))
    s[np.arange(len(preds)), preds] = 1.0
    return s


def test_hand_computed_metrics_with_a_class_never_predicted():
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    preds = np.array([0, 0, 0, 1, 1, 0, 1, 1])  # class 2 is never predicted
    groups = np.array(["head", "medium", "tail"])
    m = classification_metrics(labels, _scores(preds, 3), groups)
    assert m["top1"] == pytest.approx(4 / 8)
    # recalls: 3/4, 1/2, 0
    assert m["balanced_accuracy"] == pytest.approx((0.75 + 0.5 + 0) / 3)
    # F1: class0 p=3/4 r=3/4 -> .75; class1 p=1/4 r=1/2 -> 1/3; class2 -> 0
    assert m["macro_f1"] == pytest.approx((0.75 + 1 / 3 + 0) / 3)
    assert (m["head"], m["medium"], m["tail"]) == pytest.approx((0.75, 0.5, 0.0))


def test_class_absent_from_test_set_is_nan_and_skipped():
    pc = per_class_accuracy(np.array([0, 0, 1]), np.array([0, 1, 1]), 3)
    assert pc[0] == 0.5 and pc[1] == 1.0 and math.isnan(pc[2])
    groups = np.array(["head", "head", "tail"])
    g = tier_accuracy(pc, groups)
    assert g["head"] == pytest.approx(0.75) and math.isnan(g["tail"]) and math.isnan(g["medium"])


def test_group_with_one_class():
    pc = np.array([0.9, 0.5, 0.1])
    g = tier_accuracy(pc, np.array(["head", "head", "tail"]))
    assert g["tail"] == pytest.approx(0.1)


def test_top5_and_confusion():
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    assert topk_accuracy(np.array([4, 0]), scores, 5) == 0.5
    assert topk_accuracy(np.array([0, 1]), scores, 1) == 0.5
    cm = confusion(np.array([0, 1, 1]), np.array([1, 1, 0]), 2)
    assert cm.tolist() == [[0, 1], [1, 1]]


def test_gap_and_seed_summary():
    assert gap(0.8, 0.6) == pytest.approx((0.2, 0.25))
    s = seed_summary([0.7, 0.8, 0.9])
    assert s["mean"] == pytest.approx(0.8) and s["std"] == pytest.approx(0.1)
    # t(0.975, 2) = 4.3027 -> 4.3027 * 0.1 / sqrt(3)
    assert s["ci95"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-5)
    one = seed_summary([0.5])
    assert one["mean"] == 0.5 and math.isnan(one["std"]) and one["n"] == 1


def test_top5_on_tied_scores_is_the_same_in_metrics_and_saved_predictions() -> None:
    """Ties go to the lower class index everywhere, as argmax breaks them: metrics.json's
    top-5 and the top-5 rebuilt from predictions.csv cannot disagree."""
    scores = np.zeros((2, 12))
    scores[:, 11], scores[:, 5] = 1.0, 0.5  # then ten tied classes
    labels = np.array([1, 3])
    top = top_classes(scores, 5)
    assert top.tolist() == [[11, 5, 0, 1, 2]] * 2
    assert (top[:, 0] == scores.argmax(1)).all()
    assert topk_hits(labels, scores, 5).tolist() == [True, False]  # argpartition: the reverse
    saved = pd.DataFrame(
        {
            "label": labels,
            "prediction": scores.argmax(1),
            "top5": [" ".join(map(str, row)) for row in top],
        }
    )
    groups = np.full(12, "head")
    from_saved = saved_prediction_metrics(saved, groups, 12)[0]
    assert from_saved["top5"] == classification_metrics(labels, scores, groups)["top5"] == 0.5

"""What an evaluation leaves in its directory: predictions, per-class table, metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import write_json, write_text
from ..data.prepare import StudyData
from .metrics import classification_metrics, confusion, per_class_accuracy

METRICS_FILE = "metrics.json"


def write_evaluation(
    directory: Path,
    data: StudyData,
    test_idx: np.ndarray,
    scores: np.ndarray,
    extra: dict[str, Any],
) -> dict[str, Any]:
    labels = data.labels[test_idx]
    preds = scores.argmax(1)
    top5 = np.argsort(-scores, axis=1)[:, :5]
    groups = np.asarray(data.groups)
    pred_table = pd.DataFrame(
        {
            "item": [data.items[i] for i in test_idx],
            "label": labels,
            "prediction": preds,
            "top5": [" ".join(map(str, row)) for row in top5],
            "group": groups[labels],
        }
    )
    write_text(directory / "predictions.csv", pred_table.to_csv(index=False))
    pc = per_class_accuracy(labels, preds, data.num_classes)
    counts = data.train_counts()
    per_class = pd.DataFrame(
        {"class": data.class_names, "train_count": counts, "group": groups, "accuracy": pc}
    )
    write_text(directory / "per_class.csv", per_class.to_csv(index=False))
    write_text(
        directory / "confusion.csv",
        pd.DataFrame(confusion(labels, preds, data.num_classes)).to_csv(index=False),
    )
    metrics = classification_metrics(labels, scores, groups)
    result = {"metrics": metrics, **extra}
    write_json(directory / METRICS_FILE, result)  # written last: marks the evaluation done
    return result

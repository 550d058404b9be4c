"""What an evaluation leaves in its directory, and the metrics read back from it.

An evaluation saves its test-set predictions; everything that depends on the study's current
view of the data (head/medium/tail tiers, training counts) is derived from them when the
tables are built, so no cached file can hold a stale grouping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import file_sha256, read_json_or_none, warn_rebuild, write_json, write_text
from ..data.study_data import StudyData
from .metrics import classification_metrics, confusion, prediction_metrics, top_classes

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"
PREDICTIONS_SHA256 = "predictions_sha256"  # in metrics.json: the predictions it was made with


def write_evaluation(
    directory: Path,
    data: StudyData,
    test_idx: np.ndarray,
    scores: np.ndarray,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Predictions (label, prediction, top-5), confusion, and metrics.json written last."""
    labels = data.labels[test_idx]
    preds = scores.argmax(1)
    top5 = top_classes(scores, 5)
    pred_table = pd.DataFrame(
        {
            "item": [data.items[i] for i in test_idx],
            "label": labels,
            "prediction": preds,
            "top5": [" ".join(map(str, row)) for row in top5],
        }
    )
    write_text(directory / PREDICTIONS_FILE, pred_table.to_csv(index=False))
    write_text(
        directory / "confusion.csv",
        pd.DataFrame(confusion(labels, preds, data.num_classes)).to_csv(index=False),
    )
    no_groups = np.full(data.num_classes, "")
    metrics = classification_metrics(labels, scores, no_groups)
    result = {"metrics": {k: metrics[k] for k in ("top1", "top5", "balanced_accuracy", "macro_f1")}}
    result.update(extra)
    result[PREDICTIONS_SHA256] = file_sha256(directory / PREDICTIONS_FILE)
    write_json(directory / METRICS_FILE, result)  # written last: marks the evaluation done
    return result


def predictions_readable(
    directory: Path, rows: int, num_classes: int | None = None, labels: np.ndarray | None = None
) -> bool:
    """Whether the saved predictions parse, whole, match the checksum metrics.json holds for
    them, and (given `num_classes`, `labels`) name classes in range and the test labels: an
    edited or damaged file is rebuilt with a CacheWarning, never read into the tables.
    Evaluations saved before the checksum existed are range-checked only."""
    path = directory / PREDICTIONS_FILE
    meta = read_json_or_none(directory / METRICS_FILE)
    want = meta.get(PREDICTIONS_SHA256) if isinstance(meta, dict) else None
    try:
        if want is not None and file_sha256(path) != want:
            warn_rebuild(path, "saved predictions edited or corrupted (checksum mismatch)")
            return False
        table = read_predictions(directory)
    except (OSError, ValueError, pd.errors.ParserError):
        return False
    columns = {"label", "prediction", "top5"}
    if not (columns <= set(table.columns) and len(table) == rows and not table.isna().any().any()):
        return False
    if num_classes is None:
        return True
    why = _out_of_range(table, num_classes, labels)
    if why:
        warn_rebuild(path, f"saved predictions {why}")
    return not why


def _out_of_range(table: pd.DataFrame, num_classes: int, labels: np.ndarray | None) -> str:
    """What is wrong with the class ids of saved predictions ('' when nothing)."""
    try:
        top5 = [[int(x) for x in str(row).split()] for row in table["top5"]]
        ids = {
            "label": table["label"].to_numpy(dtype=np.int64),
            "prediction": table["prediction"].to_numpy(dtype=np.int64),
            "top5": np.array([x for row in top5 for x in row], dtype=np.int64),
        }
    except (ValueError, TypeError):
        return "hold a class id that is not an integer"
    for column, values in ids.items():
        bad = values[(values < 0) | (values >= num_classes)]
        if len(bad):
            return f"hold class id {int(bad[0])} in column {column}, out of 0..{num_classes - 1}"
    if labels is not None and not np.array_equal(ids["label"], np.asarray(labels)):
        return "hold labels other than the test set's"
    return ""


def read_predictions(directory: Path) -> pd.DataFrame:
    return pd.read_csv(directory / PREDICTIONS_FILE, dtype={"top5": str})


def saved_prediction_metrics(
    predictions: pd.DataFrame, groups: np.ndarray, num_classes: int
) -> tuple[dict[str, float], np.ndarray]:
    """(metrics, per-class accuracy) of saved predictions under the given class groups."""
    labels = predictions["label"].to_numpy(dtype=np.int64)
    hit5 = [
        str(label) in str(row).split()
        for label, row in zip(labels, predictions["top5"], strict=True)
    ]
    return prediction_metrics(
        labels,
        predictions["prediction"].to_numpy(dtype=np.int64),
        np.array(hit5),
        groups,
        num_classes,
    )

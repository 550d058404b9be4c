"""Per-step and per-epoch metrics: CSV files in the run directory, TensorBoard when installed."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..atomic import write_text


class MetricsLogger:
    def __init__(self, run_dir: Path, start_epoch: int = 0) -> None:
        self.run_dir = run_dir
        self.steps_file = run_dir / "steps.csv"
        self.epochs_file = run_dir / "epochs.csv"
        self.epochs: list[dict[str, Any]] = [
            r for r in _read(self.epochs_file) if int(r["epoch"]) < start_epoch
        ]
        kept = [r for r in _read(self.steps_file) if int(r["epoch"]) < start_epoch]
        self._steps_header = list(kept[0]) if kept else None
        if kept or self.steps_file.exists():
            write_text(self.steps_file, _to_csv(kept))
        self.tb = _tensorboard(run_dir / "tensorboard")

    def step(self, row: dict[str, Any]) -> None:
        if self._steps_header is None:
            self._steps_header = list(row)
            with self.steps_file.open("w", newline="") as fh:
                csv.writer(fh).writerow(self._steps_header)
        with self.steps_file.open("a", newline="") as fh:
            csv.DictWriter(fh, self._steps_header, extrasaction="ignore").writerow(row)
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"step/{k}", v, row["step"])

    def epoch(self, row: dict[str, Any]) -> None:
        self.epochs.append(row)
        write_text(self.epochs_file, _to_csv(self.epochs))
        if self.tb is not None:
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"epoch/{k}", v, row["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _to_csv(rows: list[dict[str, Any]]) -> str:
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _tensorboard(path: Path):  # noqa: ANN202
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is an optional extra
        return None
    return SummaryWriter(str(path))

"""Per-step and per-epoch metrics: CSV files in the run directory, TensorBoard when installed;
and a progress line per epoch on stdout, flushed, so a log (no TTY, no tqdm bar) shows the
loss, the speed and the time left of the representation and of the study."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    """The whole rows of a log; a row cut off by a kill or a full disk (fields missing or
    empty, `epoch` not a number) is left out, never a traceback on resume."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):  # every row is written with its newline
        lines.pop()
    rows = list(csv.DictReader(lines))
    return [r for r in rows if None not in r and None not in r.values() and _whole(r)]


def _whole(row: dict[str, Any]) -> bool:
    try:
        int(row["epoch"])
    except (KeyError, TypeError, ValueError):
        return False
    return True


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


# ----------------------------------------------------------------------------- progress lines
def _clock() -> float:
    """Wall time of the progress estimates (tests replace it)."""
    return time.perf_counter()


@dataclass
class StudyProgress:
    """The study's work to do, in image passes (plan.py: views x epochs x images, plus
    fine-tuning), per representation; done work is counted as representations finish and,
    within one, as the fraction of its planned training images seen so far."""

    work: dict[str, tuple[float, float]]  # key: (image passes, training images)
    start: float = field(default_factory=lambda: _clock())  # looked up when made
    done: float = 0.0  # image passes of finished representations
    key: str | None = None  # the representation in progress
    label: str = ""
    seen: int = 0  # its training images so far (every fit of it)
    began: float = 0.0

    @property
    def total(self) -> float:
        return sum(passes for passes, _ in self.work.values())

    @contextlib.contextmanager
    def representation(self, key: str, label: str) -> Iterator[None]:
        """Count the epochs of every fit inside (pretraining and fine-tunes) towards `key`."""
        self.key, self.label, self.seen, self.began = key, label, 0, _clock()
        try:
            yield
        finally:
            self.done += self.work.get(key, (0.0, 0.0))[0]
            self.key = None

    def _current(self) -> tuple[float, float]:
        return self.work.get(self.key, (0.0, 0.0)) if self.key is not None else (0.0, 0.0)

    def representation_left(self) -> float | None:
        """Seconds left of the representation in progress, at its pace so far."""
        _, images = self._current()
        if self.seen == 0 or images <= 0:
            return None
        return (_clock() - self.began) / self.seen * max(images - self.seen, 0)

    def study_left(self) -> float | None:
        """Seconds left of the study: the passes left at the pace of the passes done so far."""
        passes, images = self._current()
        done = self.done + (passes * min(self.seen / images, 1.0) if images > 0 else 0.0)
        if done <= 0:
            return None
        return (_clock() - self.start) / done * max(self.total - done, 0.0)


_STUDY: StudyProgress | None = None


@contextlib.contextmanager
def study_progress(work: dict[str, tuple[float, float]]) -> Iterator[StudyProgress]:
    """While the study runs its representations, epoch lines also say the study's time left."""
    global _STUDY
    previous, _STUDY = _STUDY, StudyProgress(work)
    try:
        yield _STUDY
    finally:
        _STUDY = previous


def duration(seconds: float | None) -> str:
    """`42s`, `3m05s`, `2h07m`; `?` before anything was measured."""
    if seconds is None:
        return "?"
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def epoch_line(desc: str, epoch: int, epochs: int, row: dict[str, Any], left_images: int) -> str:
    """One epoch in words; the study's time left when a study is running."""
    ips = float(row.get("images_per_s", 0.0))
    study = _STUDY if _STUDY is not None and _STUDY.key is not None else None
    if study is not None:
        what = desc if desc == study.label else f"{study.label} ({desc})"
        left = f"left {duration(study.representation_left())} this representation, "
        left += f"{duration(study.study_left())} study"
    else:
        what = desc
        left = f"left {duration(left_images / ips if ips > 0 else None)}"
    return (
        f"{what} epoch {epoch + 1}/{epochs}: loss {float(row['loss']):.4f}, "
        f"{ips:,.0f} images/s, {left}"
    )


def report_epoch(
    desc: str, epoch: int, epochs: int, row: dict[str, Any], images: int, left_images: int
) -> None:
    """Print the epoch's line, flushed (a log file sees it at once); `images` trained in it."""
    if _STUDY is not None and _STUDY.key is not None:
        _STUDY.seen += images
    print(epoch_line(desc, epoch, epochs, row, left_images), file=sys.stdout, flush=True)

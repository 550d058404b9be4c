"""Where a study's wall time went: one row per recorded phase, read from the run directory.

The phases are recorded as they run: the image cache's decode time in its `.meta.json`
(data/store/images.py), and in each `representation.json` its pretraining (or import, init), its
feature extraction and every evaluation (representations.py, evaluation/run.py). Only files
are read, so the report and `--plan` can show the table of a run made by another process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..layout import RunLayout

DECODE = "decode"
EVALUATION_PREFIX = "evaluation "


@dataclass(frozen=True)
class CostRow:
    """One recorded phase: `phase` is decode, pretraining, import, init, features or
    evaluation; `evaluation` names which one; `representation` is empty for decode."""

    phase: str
    representation: str
    evaluation: str
    seconds: float


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _decode_rows(run: RunLayout) -> list[CostRow]:
    rows = []
    for meta in sorted(run.data.path.glob("images-*.meta.json")):
        record = _read(meta)
        if record is not None and isinstance(record.get("seconds"), int | float):
            rows.append(CostRow(DECODE, "", "", float(record["seconds"])))
    return rows


def _representation_rows(rep_dir: Path) -> list[CostRow]:
    info = _read(rep_dir / "representation.json")
    if info is None:
        return []
    phases = info.get("phases")
    if not isinstance(phases, dict):  # recorded before phases were: its total only
        seconds = info.get("seconds")
        phases = {"pretraining": seconds} if isinstance(seconds, int | float) else {}
    name = rep_dir.name.rsplit("-", 1)[0]  # the directory without its key
    rows = []
    for phase, seconds in phases.items():
        if not isinstance(seconds, int | float):
            continue
        if phase.startswith(EVALUATION_PREFIX):
            evaluation = phase.removeprefix(EVALUATION_PREFIX)
            rows.append(CostRow("evaluation", name, evaluation, float(seconds)))
        else:
            rows.append(CostRow(phase, name, "", float(seconds)))
    return rows


def cost_rows(run_dir: Path) -> list[CostRow]:
    """Every recorded phase of the run in `run_dir`: decode first, then each representation's
    phases in directory order. Missing or unreadable records give no row, never an error."""
    run = RunLayout(Path(run_dir))
    rows = _decode_rows(run)
    if run.representations.is_dir():
        for rep_dir in sorted(p for p in run.representations.iterdir() if p.is_dir()):
            rows += _representation_rows(rep_dir)
    return rows


def cost_summary(rows: list[CostRow]) -> list[dict[str, Any]]:
    """Total seconds and share per phase, largest first: what to cut first."""
    totals: dict[str, float] = {}
    for row in rows:
        totals[row.phase] = totals.get(row.phase, 0.0) + row.seconds
    whole = sum(totals.values())
    ordered = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    return [
        {"phase": phase, "seconds": round(total, 3), "share": total / whole if whole else 0.0}
        for phase, total in ordered
    ]


def cost_lines(rows: list[CostRow]) -> list[str]:
    """The per-phase summary as aligned text lines (for `--plan` or a log), largest first."""
    lines = []
    for item in cost_summary(rows):
        minutes = item["seconds"] / 60
        lines.append(f"{item['phase']:<12s} {minutes:8.1f} min  {item['share']:6.1%}")
    return lines

"""What a finished study left in its run directory, read back for the report.

The report needs nothing else: no study objects, no data preparation, no config validation.
Optional files (environment, failures, manifests, keys added after a run was made) may be
missing; the report then says less."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ..errors import UserError
from ..layout import TABLES, RunLayout
from .group_intervals import GROUP_INTERVALS


@dataclass
class RunDir:
    path: Path
    config: dict[str, Any]
    environment: dict[str, Any]
    failures: list[dict[str, Any]]
    stats: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    registration: dict[str, Any] | None = None  # registration.json; None: an older run
    rebuilt_gaps: bool = False  # the gap tables were older than today's rules: rebuilt

    @property
    def results(self) -> pd.DataFrame:
        return self.tables["results"]

    def report_setting(self, key: str, default: Any) -> Any:
        section = self.config.get("report") or {}
        return section.get(key, default) if isinstance(section, dict) else default

    def test_labels(self) -> np.ndarray | None:
        """Labels of the test split in the manifest's order (the order of test.npy rows)."""
        path = RunLayout(self.path).data.manifest("split-test")
        if not path.exists():
            return None
        return pd.read_csv(path, usecols=["label"])["label"].to_numpy()

    def test_features(self, rep_dir: str) -> np.ndarray | None:
        path = RunLayout(self.path).representation(rep_dir).test_features()
        return np.load(path) if path.exists() else None


def load_run(run_dir: str | Path) -> RunDir:
    """Read config.yaml, environment.json, failures.json, registration.json, data/stats.json and
    tables/*.csv."""
    path = Path(run_dir)
    run = RunLayout(path)
    if not run.results.exists():
        raise UserError(
            f"{path}: no tables/results.csv; is this a finished study's output directory?"
        )
    tables = {name: _csv(run.table(name)) for name in TABLES}
    if run.table(GROUP_INTERVALS).exists():  # data.group_by studies only
        tables[GROUP_INTERVALS] = _csv(run.table(GROUP_INTERVALS))
    tables, rebuilt = current_gaps(tables)
    return RunDir(
        path=path,
        config=_yaml(run.config),
        environment=_json(run.environment, {}),
        failures=_json(run.failures, []),
        stats=tiers_were_groups(_json(run.data.stats, {}), tables),
        tables=tables,
        registration=_json(run.registration, None),
        rebuilt_gaps=rebuilt,
    )


def tiers_were_groups(stats: dict[str, Any], tables: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Runs written before the frequency tiers had their own word: stats.json's "groups" and
    the per-class table's "group" column are read as "tiers" and "tier" (in place)."""
    for entry in [stats, *stats.get("seeds", {}).values()]:
        if isinstance(entry, dict) and "groups" in entry and "tiers" not in entry:
            entry["tiers"] = entry.pop("groups")
    per_class = tables.get("per_class")
    if per_class is not None and "group" in per_class and "tier" not in per_class:
        tables["per_class"] = per_class.rename(columns={"group": "tier"})
    return stats


def current_gaps(tables: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], bool]:
    """The gap tables by today's rules: a run written before each arm had its own floor in
    Δ_learned (no `top1_imbalanced_floor` column) gets them rebuilt from its results.csv, so an
    old run is never reported with a stale Δ_learned; (tables, whether they were rebuilt)."""
    runs, res = tables.get("gap_runs", pd.DataFrame()), tables.get("results", pd.DataFrame())
    needed = ("balanced", "matched", "comparison", "status", "scenario")
    if (
        runs.empty
        or res.empty
        or "top1_imbalanced_floor" in runs
        or any(c not in res for c in needed)
    ):
        return tables, False
    from .gaps import gap_tables, with_floor

    ok = with_floor(res)
    ok = ok[ok["status"].astype(str) == "ok"] if "status" in ok else ok
    flags = ok["balanced"].astype(str).str.strip().str.lower().isin(("true", "1", "1.0"))
    names = ok.loc[flags, "subset"].dropna().unique()
    if len(names) != 1:
        return tables, False
    gap_runs, gaps = gap_tables(ok, str(names[0]))
    return {**tables, "gap_runs": gap_runs, "gaps": gaps}, True


def _yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None
    return data if isinstance(data, dict) else {}


def _json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def _csv(path: Path) -> pd.DataFrame:
    """A table, or a UserError when it is damaged: pandas fills a row cut off mid-way with
    NaN, and a report from it would be wrong without a word."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return pd.DataFrame()
    if not raw.strip():  # pandas writes a table without columns as one empty line
        return pd.DataFrame()
    rebuild = "rerun `ssl-robustness run` on the study's config to rebuild the tables"
    if not raw.endswith(b"\n"):
        raise UserError(f"{path}: truncated (its last row is cut off); {rebuild}")
    try:
        df = pd.read_csv(io.BytesIO(raw))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable table ({exc}); {rebuild}") from None
    return df

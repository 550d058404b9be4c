"""Kill a study anywhere (SIGKILL: no cleanup runs), re-run it, and get the same tables.

Each case runs a tiny study on a decoded image folder in a subprocess with the failpoint
`SSL_ROBUSTNESS_KILL_AT=<point>:<n>` (see ssl_robustness/faults.py), checks that it died of
SIGKILL where it was meant to, re-runs it without the variable, and compares every table with
one uninterrupted run of the same config in another directory. Nothing needs dropping before
the comparison: run directories are keyed by the config, not the output folder, so even
`rep_dir` is the same, and on CPU with one thread every number must be identical.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import tiny_study, write_image
from ssl_robustness import faults
from ssl_robustness.atomic import TEMP_PATTERN
from ssl_robustness.errors import UserError

TABLES = ("results", "per_class", "aggregate", "gaps", "gap_runs")
# tiny subsets of 40 images in batches of 16 (full batches only): 2 steps per epoch, so each
# representation pretrains for 4 steps and then fine-tunes for 4 steps (epochs of 2 steps);
# the first representation's steps 1-4 are pretraining, 5-8 its fine-tune
STEPS_PER_EPOCH = 2


def _config(tmp: Path, root: Path, out: Path) -> Path:
    raw = tiny_study(tmp)
    raw.update(
        output_dir=str(out),
        random_init=False,
        data={
            "source": "folder",
            "root": str(root),
            "image_size": 8,
            "decode_workers": 2,
            "split": {"val_per_class": 3, "test_per_class": 5},
            "imbalance": {"profile": "exp", "ratio": 0.5, "n": 40},
        },
        pretrain={"epochs": 2, "batch_size": 16, "checkpoint_every": 1},
        evaluation={
            "linear": {"train_on": ["balanced"], "l2_grid": [1e-3]},
            "knn": {"k": [5]},
            "finetune": {"epochs": 2, "batch_size": 16, "train_on": ["own"]},
        },
        report={"tsne": False},
    )
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def _run(config: Path, kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    """`ssl-robustness run CONFIG` in a fresh interpreter, single-threaded (deterministic)."""
    env = {k: v for k, v in os.environ.items() if k != faults.ENV_VAR}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    if kill_at is not None:
        env[faults.ENV_VAR] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "ssl_robustness.cli", "run", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """4 classes x 30 PNGs to decode, and one uninterrupted reference run of the study."""
    tmp = tmp_path_factory.mktemp("kill_resume")
    root = tmp / "images"
    for k in range(120):
        write_image(root / f"class{k % 4}" / f"img{k:03d}.png", k)
    ref = tmp / "reference"
    proc = _run(_config(tmp, root, ref))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"tmp": tmp, "root": root, "reference": ref}


def _files(out: Path, pattern: str) -> list[Path]:
    return sorted(out.rglob(pattern))


def _killed_building_the_cache(out: Path) -> None:
    assert not _files(out / "data", "images-*.npy"), "the image cache was finished"
    assert any(TEMP_PATTERN.match(p.name) for p in (out / "data").iterdir()), "no partial cache"


def _killed_pretraining(out: Path) -> None:
    started = [p.parent.parent for p in _files(out, "representations/*/train/checkpoint.pt")]
    assert started, "no pretraining checkpoint: the kill came before the first epoch ended"
    assert not [d for d in started if (d / "backbone.pt").exists()], "pretraining had finished"


def _killed_fine_tuning(out: Path) -> None:
    runs = [p.parent for p in _files(out, "eval/finetune-*/checkpoint.pt")]
    assert runs, "no fine-tune checkpoint: the kill came before its first epoch ended"
    assert not [d for d in runs if (d / "predictions.csv").exists()], "fine-tuning had finished"


def _killed_writing_tables(out: Path) -> None:
    written = {p.stem for p in (out / "tables").glob("*.csv")}
    assert written == {"results", "per_class"}, written


def _killed_writing_the_report(out: Path) -> None:
    assert [p.name for p in (out / "report" / "figures").glob("*.png")] == ["class_counts.png"]
    assert not (out / "report" / "report.html").exists()


CASES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "image-cache": ("image-cache:60", _killed_building_the_cache),
    # mid-epoch 2 of the first pretraining, after its epoch-1 checkpoint
    "mid-pretraining": (f"train-step:{STEPS_PER_EPOCH + 2}", _killed_pretraining),
    # mid-epoch 2 of the first fine-tune (after 2 pretraining epochs and 1 fine-tune epoch)
    "mid-fine-tune": (f"train-step:{3 * STEPS_PER_EPOCH + 2}", _killed_fine_tuning),
    "tables": ("tables:3", _killed_writing_tables),  # results and per_class written
    "report": ("report:2", _killed_writing_the_report),  # the first figure written
}


@pytest.mark.parametrize("case", list(CASES))
def test_killed_study_resumes_to_the_same_tables(case: str, study: dict[str, Path]) -> None:
    kill_at, killed_where = CASES[case]
    out = study["tmp"] / case
    config = _config(study["tmp"], study["root"], out)

    killed = _run(config, kill_at)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    killed_where(out)

    resumed = _run(config)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    orphans = [p for p in out.rglob("*.tmp") if TEMP_PATTERN.match(p.name)]
    assert not orphans, f"temp files left behind: {orphans}"
    ref = study["reference"] / "tables"
    assert sorted(p.name for p in (out / "tables").glob("*.csv")) == sorted(
        p.name for p in ref.glob("*.csv")
    )
    for name in TABLES:
        expected = pd.read_csv(ref / f"{name}.csv")
        assert len(expected), f"{name}: the reference table is empty, the test proves nothing"
        pd.testing.assert_frame_equal(
            pd.read_csv(out / "tables" / f"{name}.csv"), expected, check_exact=True, obj=name
        )


# -- the failpoint itself, in this process -------------------------------------------------


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int]]]:
    """Record the os.kill calls faults makes instead of dying; forget the armed point after."""
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: calls.append((pid, sig)))
    faults.reset()
    yield calls
    faults.reset()


def test_failpoint_fires_on_the_nth_time_its_point_is_reached(kills, monkeypatch):
    monkeypatch.setenv(faults.ENV_VAR, "tables:3")
    for _ in range(2):
        faults.reached("tables")
        faults.reached("report")
    assert kills == []
    faults.reached("tables")
    assert kills == [(os.getpid(), signal.SIGKILL)]
    faults.reached("tables")
    assert len(kills) == 1


def test_failpoint_reads_the_variable_once(kills, monkeypatch):
    monkeypatch.delenv(faults.ENV_VAR, raising=False)
    faults.reached("train-step")
    monkeypatch.setenv(faults.ENV_VAR, "train-step:1")
    faults.reached("train-step")
    assert kills == []


@pytest.mark.parametrize("value", ["tables", "tables:0", "tables:x", "nowhere:2", ":3"])
def test_malformed_failpoint_is_refused_naming_the_variable(kills, monkeypatch, value):
    monkeypatch.setenv(faults.ENV_VAR, value)
    with pytest.raises(UserError, match=f"{faults.ENV_VAR}='{value}'"):
        faults.reached("tables")

"""One process per output directory: a second process is refused (or waits), a killed
holder leaves no stale lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import yaml
from click.testing import CliRunner

from conftest import tiny_study
from ssl_robustness.cli import cli
from ssl_robustness.errors import UserError
from ssl_robustness.lock import LOCK_NAME, output_lock


def _holder(directory, hold_s: float = 60.0) -> subprocess.Popen:
    """A child process that takes the lock, says so on stdout, and sleeps."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from ssl_robustness.lock import output_lock
        with output_lock(Path({str(directory)!r}), "run"):
            print("locked", flush=True)
            time.sleep({hold_s})
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "locked"
    return child


@pytest.fixture
def held(tmp_path):
    child = _holder(tmp_path / "out")
    yield child
    if child.poll() is None:
        child.kill()
    child.wait()


def test_second_process_is_refused_with_pid_host_and_time(tmp_path, held):
    with pytest.raises(UserError) as exc, output_lock(tmp_path / "out", "run"):
        pass
    msg = str(exc.value)
    assert f"pid {held.pid} on host {socket.gethostname()} (run), since 20" in msg
    assert "--wait" in msg
    info = json.loads((tmp_path / "out" / LOCK_NAME).read_text())
    assert info["pid"] == held.pid and info["command"] == "run"


def test_killed_holder_leaves_no_stale_lock(tmp_path, held):
    os.kill(held.pid, signal.SIGKILL)
    held.wait()
    with output_lock(tmp_path / "out", "run") as path:  # taken at once: flock died with it
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert path.read_text() == ""  # released: no holder described


def test_wait_blocks_until_the_holder_exits(tmp_path):
    child = _holder(tmp_path / "out", hold_s=1.5)
    waited_for: list[str] = []
    start = time.monotonic()
    try:
        with output_lock(tmp_path / "out", "run", wait=True, on_wait=waited_for.append):
            elapsed = time.monotonic() - start
    finally:
        child.wait(timeout=30)
    assert elapsed > 0.5 and child.returncode == 0
    assert waited_for and f"pid {child.pid}" in waited_for[0]


def test_lock_is_released_for_the_next_command_in_one_process(tmp_path):
    for _ in range(2):
        with output_lock(tmp_path / "out", "data stats"):
            pass


def test_run_and_data_stats_refuse_a_directory_in_use(tmp_path, held):
    raw = tiny_study(tmp_path)
    raw["output_dir"] = str(tmp_path / "out")
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    for args in (["run", str(cfg)], ["data", "stats", str(cfg)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert f"another ssl-robustness process is using this output directory: pid {held.pid}" in (
            result.stderr
        )
        assert "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [LOCK_NAME]  # nothing written

"""The CPU threading chosen before torch starts: wait policy, quota-capped thread count, and
the user's own settings always winning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssl_robustness import cpu_threads
from ssl_robustness.cpu_threads import cgroup_cpu_quota, choose_cpu_threads, usable_cpus


def _cgroup_v2(tmp_path: Path, text: str) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cpu.max").write_text(text)
    return tmp_path


def _cgroup_v1(tmp_path: Path, quota: int, period: int) -> Path:
    folder = tmp_path / "cpu,cpuacct"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (folder / "cpu.cfs_period_us").write_text(f"{period}\n")
    return tmp_path


def test_cgroup_quotas_are_read_in_both_versions(tmp_path):
    assert cgroup_cpu_quota(_cgroup_v2(tmp_path / "a", "max 100000\n")) is None
    assert cgroup_cpu_quota(_cgroup_v2(tmp_path / "b", "250000 100000\n")) == 2.5
    assert cgroup_cpu_quota(_cgroup_v1(tmp_path / "c", 50000, 100000)) == 0.5
    assert cgroup_cpu_quota(_cgroup_v1(tmp_path / "d", -1, 100000)) is None
    assert cgroup_cpu_quota(tmp_path / "none") is None


@pytest.fixture
def eight_cpus(monkeypatch):
    monkeypatch.setattr(cpu_threads, "affinity_cpus", lambda: 8)


def test_a_quota_below_the_affinity_mask_caps_the_threads(tmp_path, eight_cpus):
    assert usable_cpus(_cgroup_v2(tmp_path / "a", "250000 100000")) == 3  # 2.5 CPUs of time
    assert usable_cpus(_cgroup_v2(tmp_path / "b", "1600000 100000")) == 8  # above the mask
    env: dict[str, str] = {}
    choice = choose_cpu_threads(env, _cgroup_v2(tmp_path / "c", "200000 100000"), load=1.0)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "2"}
    assert choice.changed == env and choice.usable_cpus == 2


def test_sleeping_waiters_only_where_other_work_runs_as_we_start(tmp_path, eight_cpus):
    """PASSIVE costs 10-13% of an idle step: idle cores keep torch's spinning waiters."""
    env: dict[str, str] = {"PATH": "/bin"}
    assert choose_cpu_threads(env, tmp_path, load=0.2).changed == {}
    assert env == {"PATH": "/bin"}
    choice = choose_cpu_threads(env, tmp_path, load=1.3)
    assert env == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    assert "busy cores" in choice.note


@pytest.mark.parametrize(
    "user",
    [
        {"OMP_WAIT_POLICY": "ACTIVE"},
        {"GOMP_SPINCOUNT": "100000"},
        {"OMP_NUM_THREADS": "4", "KMP_BLOCKTIME": "0"},
    ],
)
def test_the_users_own_settings_win(tmp_path, eight_cpus, user):
    env = dict(user)
    choice = choose_cpu_threads(env, _cgroup_v2(tmp_path, "100000 100000"), load=3.0)
    assert all(env[k] == v for k, v in user.items())
    assert "OMP_WAIT_POLICY" not in choice.changed
    if "OMP_NUM_THREADS" in user:
        assert "OMP_NUM_THREADS" not in choice.changed


def test_the_off_switch_leaves_everything_as_it_comes(tmp_path, eight_cpus):
    env = {"SSL_ROBUSTNESS_CPU_THREADS": "default"}
    assert choose_cpu_threads(env, _cgroup_v2(tmp_path, "100000 100000"), load=3.0).changed == {}
    assert env == {"SSL_ROBUSTNESS_CPU_THREADS": "default"}


def _cli_in_fresh_process(load_stub: str, argv: list[str]) -> subprocess.CompletedProcess:
    """`cli.main()` with `argv` in a fresh process whose `other_load` is `load_stub` (code
    defining `stub`), the wait variables unset; it prints the wait policy it ended with."""
    code = (
        "import os, sys\n"
        "from ssl_robustness import cli, cpu_threads\n"
        f"{load_stub}\n"
        "cpu_threads.other_load = stub\n"
        "assert 'torch' not in sys.modules\n"
        f"sys.argv = ['ssl-robustness', *{argv!r}]\n"
        "try:\n    cli.main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('POLICY', os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in cpu_threads.WAIT_VARIABLES}
    env.pop(cpu_threads.OFF_SWITCH, None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_the_cli_sets_the_wait_policy_before_torch_starts():
    """In a fresh process, `main` runs before anything imports torch, so OpenMP reads it."""
    out = _cli_in_fresh_process("stub = lambda: 2.0  # as if other work ran", ["run", "--help"])
    assert "POLICY PASSIVE" in out.stdout, out.stderr


def test_commands_without_torch_skip_the_load_sample():
    """`config` and `report` never start OpenMP: they do not spend 0.2 s sampling the load."""
    stub = "def stub():\n    raise SystemExit('sampled the load')"
    out = _cli_in_fresh_process(stub, ["config", "--section", "seeds"])
    assert out.returncode == 0 and "POLICY None" in out.stdout, out.stdout + out.stderr

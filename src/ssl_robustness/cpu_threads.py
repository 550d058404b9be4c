"""CPU threading chosen before torch starts its OpenMP runtime.

torch's OpenMP threads spin while they wait for work (libgomp's default). On idle cores that
costs nothing; as soon as another process runs, the spinning threads take its time slices and
each other's: beside one busy process a small ResNet's step fell to 38% of its idle speed
here (benchmarks/README.md), and to a fifth in the issue that asked for this. Sleeping waiters
(`OMP_WAIT_POLICY=PASSIVE`) win back a third on busy cores but cost 10-13% on idle ones, so
they are the choice only when the cores are already busy as the process starts; the thread
count follows the CPUs this process may actually use (affinity mask and cgroup quota), which
OpenMP's own default ignores for quotas.

Both are environment variables that the OpenMP runtime reads once, when torch is imported,
so `choose_cpu_threads` runs first thing in the CLI (torch is imported lazily after the
config is validated). A user's own `OMP_*`/`GOMP_*` settings always win; so does a later
`torch.set_num_threads`. Under `torchrun` with several processes on one machine, torchrun
sets `OMP_NUM_THREADS=1` itself unless the user did, which is what a multi-process CPU run
wants; we leave it.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

WAIT_POLICY = "PASSIVE"
BUSY_LOAD = 1.0  # other threads runnable as we start: the cores are shared
# variables that decide how OpenMP's threads wait: any of them set means the user chose
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
OFF_SWITCH = "SSL_ROBUSTNESS_CPU_THREADS"  # "default": leave torch's threading as it comes
OFF_SWITCH_VALUES = ("", "default")  # anything else (a typo: "defualt") is refused, not ignored


@dataclass(frozen=True)
class ThreadChoice:
    """What was set (`changed`: variable -> value) and why, for logs and `--plan`."""

    changed: dict[str, str]
    usable_cpus: int
    note: str


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs' worth of time the cgroup allows (cgroup v2 `cpu.max` or v1 `cfs_quota_us`), or
    None where there is no quota. A container limited to 2 CPUs on a 64-core host sees 64
    cores in its affinity mask; OpenMP would start 64 threads that share 2 CPUs of time.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "cpu.max").write_text("150000 100000\\n")
    >>> cgroup_cpu_quota(d)
    1.5
    """
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for folder in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        try:
            quota_us = int((root / folder / "cpu.cfs_quota_us").read_text())
            period_us = int((root / folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us
    return None


def affinity_cpus() -> int:
    """The CPUs this process may run on (its affinity mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def usable_cpus(root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may run on, capped by the cgroup's quota."""
    quota = cgroup_cpu_quota(root)
    cpus = affinity_cpus()
    return cpus if quota is None else max(1, min(cpus, math.ceil(quota)))


def other_load(samples: int = 5, interval_s: float = 0.05) -> float:
    """Other threads runnable right now, before torch starts: the median over a few samples
    of the kernel's running count (/proc/loadavg's R of R/T) less this process. The 1-minute
    load average would lag: a study started right after another would see the first one's
    threads and choose sleeping waiters on idle cores."""
    counts = []
    for i in range(samples):
        try:
            running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        counts.append(running - 1)
        if i + 1 < samples:
            time.sleep(interval_s)
    return float(sorted(counts)[len(counts) // 2])


def choose_cpu_threads(
    environ: MutableMapping[str, str] | None = None,
    root: Path = Path("/sys/fs/cgroup"),
    load: float | None = None,
) -> ThreadChoice:
    """Set the OpenMP wait policy and thread count in `environ` (the process's environment by
    default) unless the user set them; must run before torch is imported to take effect.

    Sleeping waiters cost 10-13% of an idle step (benchmarks/README.md), so they are chosen
    only when other work is already running as the process starts (`load`, default
    `other_load()`, at least BUSY_LOAD): torch's OpenMP then uses every usable CPU, and any
    other runnable thread oversubscribes them, whatever the core count."""
    env = os.environ if environ is None else environ
    cpus = usable_cpus(root)
    switch = env.get(OFF_SWITCH, "")
    if switch.strip().lower() not in OFF_SWITCH_VALUES:
        from .errors import UserError

        raise UserError(
            f"{OFF_SWITCH}={switch!r}: not a value it takes; set it to 'default' (torch's "
            "threading as it comes) or leave it unset (the choice this module makes)"
        )
    if switch.strip().lower() == "default":
        return ThreadChoice({}, cpus, f"{OFF_SWITCH}=default: torch's threading as it comes")
    if environ is None and "torch" in sys.modules:
        return ThreadChoice({}, cpus, "torch was imported first: its threading as it comes")
    load = other_load() if load is None else load  # sampled for 0.2 s: only when it can matter
    changed: dict[str, str] = {}
    busy = load >= BUSY_LOAD
    if busy and not any(v in env for v in WAIT_VARIABLES):
        changed["OMP_WAIT_POLICY"] = WAIT_POLICY
    # OpenMP's default already follows the affinity mask (torch then takes the physical cores
    # among it); only a cgroup quota below the mask needs saying
    if "OMP_NUM_THREADS" not in env and cpus < affinity_cpus():
        changed["OMP_NUM_THREADS"] = str(cpus)
    env.update(changed)
    kept = [f"{v}={env[v]}" for v in (*WAIT_VARIABLES, "OMP_NUM_THREADS") if v in env]
    state = f"{load:g} other runnable thread(s) ({'busy' if busy else 'idle'} cores)"
    return ThreadChoice(changed, cpus, f"{cpus} usable CPU(s), {state}; {', '.join(kept)}")

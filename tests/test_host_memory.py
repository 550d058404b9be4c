"""The host malloc setting: freed activation memory is reused instead of faulted back in."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

import pytest

from ssl_robustness.engine.host_memory import ENV, glibc

needs_glibc = pytest.mark.skipif(glibc() is None, reason="mallopt knobs are glibc's")


def huge_pages_always() -> bool:
    """With transparent huge pages `always`, the kernel faults a large block in 2 MiB at a time,
    and glibc's own malloc faults too little for the comparison to say anything."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[always]" in f.read()
    except OSError:
        return False


# Ten forward+backward steps of a small conv net whose activations (64 MiB each) are over
# glibc's largest mmap threshold, as a training step's are; prints each step's page faults.
STEP_FAULTS = """
import resource, torch
from ssl_robustness.engine.device import prepare_model
torch.manual_seed(0)
conv = lambda i: torch.nn.Conv2d(i, 16, 3, padding=1)
net = prepare_model(torch.nn.Sequential(conv(3), torch.nn.ReLU(), conv(16)), torch.device("cpu"))
x = torch.randn(64, 3, 128, 128).contiguous(memory_format=torch.channels_last)
for _ in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    net(x).square().mean().backward()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def steady_step_faults(malloc: str | None) -> float:
    """The median page faults of steps 3 to 10 (the first two warm the heap up; a kept heap
    still grows by a block now and then as it settles, hence a median)."""
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if malloc is not None:
        env[ENV] = malloc
    out = subprocess.run(
        [sys.executable, "-c", STEP_FAULTS], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return statistics.median(int(n) for n in out.stdout.split()[2:])


@needs_glibc
@pytest.mark.skipif(huge_pages_always(), reason="huge pages hide the faults being counted")
def test_prepared_process_reuses_freed_memory_without_page_faults() -> None:
    pages = 64 * 2**20 // 4096  # one activation in 4 KiB pages
    default = steady_step_faults("default")
    kept = steady_step_faults(None)
    assert default >= 2 * pages  # glibc unmapped them: every step faults them back in
    assert kept <= default / 8  # kept in the heap: reused as they are (typically 0 faults)


def test_opt_out_leaves_malloc_alone() -> None:
    code = "from ssl_robustness.engine.host_memory import keep_freed_memory as k; print(k(), k())"
    env = {**os.environ, ENV: "default"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert (out.returncode, out.stdout.split()) == (0, ["False", "False"]), out.stderr
    env.pop(ENV)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    expected = "True" if glibc() is not None else "False"
    assert (out.returncode, out.stdout.split()) == (0, [expected, expected]), out.stderr


def test_only_a_cpu_model_changes_the_host_malloc() -> None:
    code = (
        "import torch\n"
        "from ssl_robustness.engine import host_memory\n"
        "from ssl_robustness.engine.device import prepare_model\n"
        "prepare_model(torch.nn.Linear(2, 2), torch.device('meta'))\n"
        "print(host_memory._state)\n"
        "prepare_model(torch.nn.Linear(2, 2), torch.device('cpu'))\n"
        "print('kept' in host_memory._state)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (out.returncode, out.stdout.split()) == (0, ["{}", "True"]), out.stderr

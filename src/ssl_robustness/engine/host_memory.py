"""Keep freed host memory in the heap, so a training step does not page-fault its activations.

Each training step allocates and frees the same large activation buffers. glibc's malloc
serves every block over its mmap threshold (at most 32 MiB, so every ResNet activation of a
large batch) by a fresh `mmap` and unmaps it on `free`: the kernel then zeroes and faults
those pages back in on the next step. On 2 CPU cores, a ResNet-18 SimCLR step of 128 pairs
spent 1.3 of its 5.2 s in the kernel (617k minor page faults per step); with mmap off and the
heap trimmed only above 2 GiB, 24k faults and 4.2 s, with the same arithmetic and bits
(`benchmarks/throughput.py --vs-plain`, `benchmarks/README.md`). jemalloc or tcmalloc
preloaded do the same job; this is the setting for the glibc malloc most Linux users have.

The setting is process-wide and stays: freed blocks stay in the process, so its resident size
stays at its peak step's (several local jobs at once each hold their own peak). It is made
only for CPU training and evaluation (`engine.device.prepare_model` on a CPU device); a GPU
run's host side allocates little. Set `SSL_ROBUSTNESS_HOST_MALLOC=default` before the first
CPU model is prepared to leave glibc's defaults alone. Elsewhere than Linux with glibc,
nothing changes. Measured with transparent huge pages in `madvise` mode (this machine's); with
`always`, the kernel faults large blocks in 2 MiB at a time and the gain is smaller.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

ENV = "SSL_ROBUSTNESS_HOST_MALLOC"
# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_ABOVE = 2**31 - 1  # bytes of free heap top kept before trimming (mallopt takes an int)

_state: dict[str, bool] = {}


def glibc() -> ctypes.CDLL | None:
    """This process's C library where it is glibc on Linux (the only one with these mallopt
    knobs); None elsewhere. With jemalloc or tcmalloc preloaded, glibc's mallopt still answers
    but no longer governs malloc: harmless, and those allocators keep freed memory anyway."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)  # the symbols already loaded: glibc's mallopt among them


def keep_freed_memory() -> bool:
    """Turn mmap off for malloc and trim the heap only above 2 GiB, once per process.

    Returns whether the setting is in force (False where opted out or not glibc)."""
    if "kept" in _state:
        return _state["kept"]
    kept = False
    libc = None if os.environ.get(ENV, "").lower() == "default" else glibc()
    if libc is not None:
        kept = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE)
        )
    _state["kept"] = kept
    return kept


def keeps_freed_memory() -> bool:
    """Whether `keep_freed_memory` has put the setting in force in this process."""
    return _state.get("kept", False)

"""Keep freed host memory in the heap, so a training step does not page-fault its activations.

Each training step allocates and frees the same large activation buffers. glibc's malloc
serves every block over its mmap threshold (at most 32 MiB, so every ResNet activation of a
large batch) by a fresh `mmap` and unmaps it on `free`: the kernel then zeroes and faults
those pages back in on the next step. On 2 CPU cores, a ResNet-18 SimCLR step of 128 pairs
spent 1.3 of its 5.2 s in the kernel (617k minor page faults per step); with mmap off and the
heap trimmed only above 2 GiB, 24k faults and 4.2 s, with the same arithmetic and bits
(`benchmarks/throughput.py --vs-plain`, `benchmarks/README.md`). jemalloc or tcmalloc
preloaded do the same job; this is the setting for the glibc malloc most Linux users have.

The freed blocks stay in the process (its resident size stays at the peak step's). Set
`SSL_ROBUSTNESS_HOST_MALLOC=default` to leave glibc's defaults alone. Elsewhere than Linux
with glibc, nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys

ENV = "SSL_ROBUSTNESS_HOST_MALLOC"
# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_ABOVE = 2**31 - 1  # bytes of free heap top kept before trimming (mallopt takes an int)

_state: dict[str, bool] = {}


def glibc_malloc() -> ctypes.CDLL | None:
    """The C library, where it is glibc on Linux (the only one with these mallopt knobs)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def keep_freed_memory() -> bool:
    """Turn mmap off for malloc and trim the heap only above 2 GiB, once per process.

    Returns whether the setting is in force (False where opted out or not glibc)."""
    if "kept" in _state:
        return _state["kept"]
    kept = False
    libc = None if os.environ.get(ENV, "").lower() == "default" else glibc_malloc()
    if libc is not None:
        kept = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE)
        )
    _state["kept"] = kept
    return kept

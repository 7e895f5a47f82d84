"""glibc's malloc: keep freed memory for reuse instead of handing it back to the OS (training, benchmarks).

With glibc's defaults a block of 128 KiB or more comes from its own ``mmap`` and goes back to the
kernel when freed (the threshold rises only as such blocks are freed, up to 32 MiB), and the top of
the heap is trimmed. A meta-learning step allocates activations of several MiB each, many times
over: each fresh block is new pages, zeroed by the kernel on first touch, hundreds of thousands
of page faults per meta-iteration (bench/README.md measures the difference). The CLI's ``train``,
``evaluate``, ``lake-runs`` and ``calibrate-steps`` keep freed memory unless ``--malloc default``, and so does the app.
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` in the environment do the same for any
program, at start-up.
"""

from __future__ import annotations

import ctypes
import functools
import platform
import resource

# ``--malloc``: keep freed memory (`keep_freed_memory`), or glibc's own settings.
MALLOC_MODES = ("keep", "default")

M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's largest mmap threshold on 64-bit machines
TRIM_NEVER = 2**31 - 1  # mallopt takes an int: trim only when 2 GiB lie free at the top of the heap


def is_glibc() -> bool:
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@functools.cache  # once per process: the app calls it on every rerun of its script
def keep_freed_memory() -> bool:
    """Make this process's malloc reuse freed blocks up to 32 MiB instead of returning them to the OS.

    Process-wide and not undone (a benchmark that calls it times every side under the same
    settings); a process's memory then stays at its peak. Returns False, changing nothing, where
    the C library is not glibc.
    """
    if not is_glibc():
        return False
    libc = ctypes.CDLL("libc.so.6")  # glibc's soname on every Linux architecture
    # mallopt returns 1 on success, 0 on error.
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_NEVER))


def minor_page_faults() -> int:
    """Minor page faults of this process so far: new pages the kernel had to map (and zero)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

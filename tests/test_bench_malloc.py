"""bench.maml_speed's fairness knobs: glibc's malloc keeping freed memory, and timing in blocks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bench.maml_speed import Case, side_by_side
from playground.runtime.allocator import is_glibc

# Blocks of 8 MiB and a little more each round (glibc's default raises its mmap threshold to the
# size of a freed block, so a growing size keeps its defaults at work), two alive at once, every
# page written, then freed: prints the minor page faults that took.
CHURN = textwrap.dedent(
    """
    import ctypes, ctypes.util, sys
    from playground.runtime.allocator import keep_freed_memory, minor_page_faults
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    def round_(r):
        size = (8 << 20) + r * 4096
        blocks = [libc.malloc(size) for _ in range(2)]
        for p in blocks:
            ctypes.memset(p, 1, size)
        for p in blocks:
            libc.free(p)
    round_(0)  # warm: the heap grows once
    before = minor_page_faults()
    for r in range(1, 21):
        round_(r)
    print(minor_page_faults() - before)
    """
)


def _faults(mode: str) -> int:
    # A child process: the setting is process-wide and is never undone.
    root = Path(__file__).resolve().parents[1]  # where `bench` imports from
    out = subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True, cwd=root)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not is_glibc(), reason="mallopt is glibc's")
def test_keeping_freed_memory_stops_the_page_faults_of_reused_buffers():
    default, keep = _faults("default"), _faults("keep")
    # glibc's default maps each block afresh and unmaps it on free: 2 x 2048 new pages a round.
    assert default >= 20 * 2 * 2048, default
    # Kept, the heap only grows by the page a round that the blocks grow by.
    assert keep < 20 * 2 * 8, (keep, default)


def _recorded(block: int, steps: int, with_reference: bool = True) -> tuple[list[str], list, list]:
    calls: list[str] = []

    def time_one(fn, batch) -> float:
        calls.append(f"{fn.__name__}{batch}")
        return float(len(calls))  # the call's position stands in for its time

    def ours(b):
        return b

    def ref(b):
        return b

    case = Case("x", ours, ref if with_reference else None)
    o, r = side_by_side(case, [0, 1], steps, block, time_one)
    return calls, [t for t, _ in o], [t for t, _ in r]


def test_strict_turns_time_every_call_in_alternation():
    calls, ours, ref = _recorded(block=1, steps=3)
    assert calls == ["ours0", "ref0", "ours1", "ref1", "ours0", "ref0"]
    assert ours == [1.0, 3.0, 5.0] and ref == [2.0, 4.0, 6.0]


def test_blocks_time_a_side_in_a_row_after_one_untimed_call():
    calls, ours, ref = _recorded(block=2, steps=4)
    # Each run of a side: one untimed call, then two timed, on the same batches for both sides.
    assert calls == ["ours0", "ours1", "ours0", "ref0", "ref1", "ref0"] * 2
    assert ours == [2.0, 3.0, 8.0, 9.0] and ref == [5.0, 6.0, 11.0, 12.0]


def test_a_case_without_reference_times_only_ours():
    calls, ours, ref = _recorded(block=3, steps=2, with_reference=False)
    assert calls == ["ours0", "ours1", "ours0", "ours1"] and ours == [2.0, 3.0] and ref == []

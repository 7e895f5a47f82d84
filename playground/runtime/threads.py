"""How many torch threads a CPU command computes with: ``--threads N``, or ``auto``.

torch starts with one thread per core whether or not the cores are free. On a machine that other
processes keep busy, its threads then wait on each other at every parallel kernel: MAML's
600-episode evaluation took 11 to 15 minutes so on a loaded 2-core machine, against 44 s with one
thread. ``auto`` takes the CPUs this process may run on, less the load of other processes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

AUTO = "auto"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as taskset or a container's cpuset set it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def load_average() -> float:
    """The 1-minute load average: processes running or waiting for a CPU (0 where the OS keeps none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def auto_threads(cpus: int, load: float) -> int:
    """``cpus`` less ``load`` (other processes' demand for CPUs), rounded, at least 1 and at most ``cpus``.

    Called as a command starts, when this process has barely added to the 1-minute average, so the
    load is taken as all other processes'.
    """
    return max(1, min(cpus, math.floor(cpus - max(0.0, load) + 0.5)))


@dataclass
class ThreadChoice:
    threads: int
    why: str  # "" when the choice needs no word: asked for, or every usable CPU

    def describe(self) -> str:
        return f"torch threads: {self.threads} ({self.why})" if self.why else ""


def choose_threads(requested: int | str = AUTO) -> ThreadChoice:
    """The thread count for ``--threads``: a number as given; ``auto`` as `auto_threads` finds it, unless
    OMP_NUM_THREADS is set (a person's or torchrun's choice, which torch already follows)."""
    if requested != AUTO:
        return ThreadChoice(int(requested), "")
    if os.environ.get("OMP_NUM_THREADS"):
        return ThreadChoice(torch.get_num_threads(), "")
    cpus, load = usable_cpus(), load_average()
    threads = auto_threads(cpus, load)
    why = "" if threads == cpus else f"of {cpus} CPUs, with a load of {load:.1f} from other processes"
    return ThreadChoice(threads, why)


def set_threads(requested: int | str = AUTO) -> ThreadChoice:
    """Make torch compute with ``choose_threads(requested)`` threads; returns the choice."""
    choice = choose_threads(requested)
    torch.set_num_threads(choice.threads)
    return choice


SERVING_THREADS = 1


def serve_threads() -> None:
    """Compute with one torch thread per kernel, for a server where concurrency comes from its visitors.

    Every visitor's script run is a thread of one process. With torch's default of one kernel thread
    per core, each of those threads starts a team of its own, and when a class clicks at once the
    teams outnumber the cores and spin waiting for each other: more CPU for the same answers
    (`python -m bench.serving_threads` measures it). One visitor alone loses little, since the app's
    tasks are small. Threads started after this call follow it.
    """
    torch.set_num_threads(SERVING_THREADS)

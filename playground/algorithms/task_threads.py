"""Run a meta-batch's tasks side by side on CPU threads (``task_batching="threads"``).

On a CPU with a few cores, one task's small convolutions (a Conv-4 on 28x28 images, a few dozen
images) keep several cores only partly busy; whole tasks side by side, each on one core, keep
them all busy. Torch releases the GIL inside its kernels, so plain Python threads suffice.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from playground.runtime.precision import autocast_state, same_autocast

T = TypeVar("T")
THREAD_PREFIX = "meta-task"


def map_tasks(fn: Callable[[int], T], n_tasks: int) -> list[T]:
    """``[fn(0), ..., fn(n_tasks - 1)]``, the tasks dealt round-robin to one worker per torch thread.

    Each worker runs torch on one thread. Results come back in task order, so a caller that sums
    them in order gets the loop's sum. With one torch thread (or one task) it is the plain loop.
    """
    threads = torch.get_num_threads()
    workers = min(threads, n_tasks)
    if workers <= 1:
        return [fn(i) for i in range(n_tasks)]

    autocast = autocast_state()  # per thread: the workers compute as the caller does

    def work(w: int) -> list[tuple[int, T]]:
        torch.set_num_threads(1)  # this thread's kernels: one core each
        with same_autocast(autocast):
            return [(i, fn(i)) for i in range(w, n_tasks, workers)]

    try:
        with ThreadPoolExecutor(workers, thread_name_prefix=THREAD_PREFIX) as pool:
            parts = list(pool.map(work, range(workers)))
    finally:
        # Torch keeps the thread count partly process-wide: the caller's count is put back.
        torch.set_num_threads(threads)
    out: list[T] = [None] * n_tasks  # type: ignore[list-item]
    for part in parts:
        for i, result in part:
            out[i] = result
    return out

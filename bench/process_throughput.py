"""Second-order MAML meta-training on N processes (the `torchrun` path) against the reference in one.

    python -m bench.process_throughput --processes 2 --threads 2

On a CPU, torch's intra-op threads keep the cores only partly busy on Conv-4's small images, and
threads that share one Python process contend for its interpreter between kernels. Data-parallel
processes (`playground.runtime.distributed`, as `torchrun --nproc_per_node=N -m playground train` runs
them: each rank meta-trains its share of the meta-batch on one thread, then one gloo all-reduce
averages the meta-gradients) share nothing but that all-reduce. This prints tasks per second of

* the reference (`bench/reference_maml.py`: clone the model per task, loop, ``create_graph``) with
  ``--threads`` torch threads in this process,
* ours in this process, tasks side by side on threads, channels-last (the best single-process row
  of ``bench.maml_speed``),
* ours on ``--processes`` gloo ranks of one thread each (channels-last, a task loop per rank, or
  with ``--rank-batching compiled`` each task's meta-gradient compiled by ``torch.compile``),

side by side: every timed iteration runs the three, one after the other, on the same meta-batch
while the others wait idle (the ranks block on a queue), and the table shows medians.
``--malloc keep`` keeps freed memory in this process and in every rank (`playground/runtime/allocator.py`),
as `train` does by default; the benchmark's own default is glibc's settings.

    python -m bench.process_throughput --processes 2 --threads 2 --malloc keep
"""

from __future__ import annotations

import argparse
import os
import queue
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bench.malloc_flag import add_malloc_flag, apply_malloc_flag
from bench.maml_speed import load_average, maml_pair
from bench.reference_maml import random_tasks
from playground.runtime import distributed
from playground.runtime.allocator import keep_freed_memory

CPU = torch.device("cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(
    rank: int, world: int, port: int, opts: dict, tasks_args: tuple, keep_memory: bool, batching: str, go, done
) -> None:
    """One gloo rank: builds the learner as every rank does, then times a meta-step per message."""
    kept = keep_memory and keep_freed_memory()  # a spawned process starts with glibc's own settings
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    distributed.setup(CPU)
    try:
        ours, _ = maml_pair({**opts, "task_batching": batching, "memory_format": "channels_last"}, CPU, tasks_args[1])
        distributed.prepare(ours)
        start = torch.cat([p.detach().flatten() for p in ours.parameters()])
        batches = [random_tasks(*tasks_args, seed=s) for s in range(2)]
        while (i := go[rank].get()) is not None:
            dist.barrier()  # every rank starts together: the clock measures the slowest
            t = time.perf_counter()
            distributed.meta_train_step(ours, batches[i % 2])
            done.put(time.perf_counter() - t)
        # The weights agree across ranks after every step (the all-reduced update): a check that the run was real.
        flat = torch.cat([p.detach().flatten() for p in ours.parameters()])
        spread = flat.clone()
        dist.all_reduce(spread, op=dist.ReduceOp.MAX)
        done.put((float((spread - flat).abs().max()), float((flat - start).abs().max()), kept))
    finally:
        distributed.cleanup()


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads of this process (default: torch's)")
    ap.add_argument("--steps", type=int, default=5, help="timed meta-iterations (after --warmup)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32, help="tasks per meta-batch (a multiple of --processes)")
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--queries", type=int, default=15, help="queries per class")
    ap.add_argument("--inner-steps", type=int, default=1)
    ap.add_argument("--inner-lr", type=float, default=0.4)
    ap.add_argument("--first-order", action="store_true")
    ap.add_argument(
        "--rank-batching",
        choices=("loop", "compiled"),
        default="loop",
        help="how each rank runs its tasks (compiled: torch.compile of each task's meta-gradient, a minute to compile)",
    )
    add_malloc_flag(ap)
    args = ap.parse_args(argv)
    if args.batch % args.processes:
        ap.error(f"--batch {args.batch} does not divide among {args.processes} processes")
    apply_malloc_flag(ap, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    opts = {"inner_steps": args.inner_steps, "inner_lr": args.inner_lr, "first_order": args.first_order}
    tasks_args = (args.batch, args.ways, args.shots, args.queries)
    batches = [random_tasks(*tasks_args, seed=s) for s in range(2)]
    _, reference = maml_pair(opts, CPU, args.ways)
    threads, _ = maml_pair({**opts, "task_batching": "threads", "memory_format": "channels_last"}, CPU, args.ways)

    ctx = mp.get_context("spawn")
    go, done = [ctx.SimpleQueue() for _ in range(args.processes)], ctx.Queue()
    ranks = mp.start_processes(
        _rank,
        args=(args.processes, free_port(), opts, tasks_args, args.malloc == "keep", args.rank_batching, go, done),
        nprocs=args.processes,
        join=False,
        start_method="spawn",
    )

    def collect() -> list:
        """One message from every rank; a rank that died is an error, not a hang."""
        got = []
        while len(got) < len(go):
            try:
                got.append(done.get(timeout=1.0))
            except queue.Empty:
                dead = [p.exitcode for p in ranks.processes if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"a rank exited (exit codes {dead}) before reporting") from None
        return got

    def on_ranks(i: int) -> float:
        for q in go:
            q.put(i)
        return max(collect())

    load = load_average()
    print(
        f"{torch.get_num_threads()} threads here, {args.processes} processes x 1 thread; torch {torch.__version__}; "
        f"{args.ways}-way {args.shots}-shot, {args.queries} queries/class, meta-batch {args.batch}, "
        f"{args.inner_steps} inner step(s), {'first' if args.first_order else 'second'} order; "
        f"median of {args.steps}; malloc {args.malloc}" + (f"; load average {load}" if load else ""),
        flush=True,
    )
    times: dict[str, list[float]] = {"reference": [], "threads": [], "processes": []}
    try:
        for i in range(args.warmup + args.steps):
            row = {}
            for name, step in (("reference", reference.meta_train_step), ("threads", threads.meta_train_step)):
                t = time.perf_counter()
                step(batches[i % 2])
                row[name] = time.perf_counter() - t
            row["processes"] = on_ranks(i)
            if i >= args.warmup:
                for k, v in row.items():
                    times[k].append(v)
        for q in go:
            q.put(None)
        spreads, moves, kept = zip(*collect())
        spread, moved = max(spreads), max(moves)
    finally:
        for p in ranks.processes:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    medians = {k: statistics.median(v) for k, v in times.items()}
    labels = {
        "reference": f"reference (clone per task), {torch.get_num_threads()} threads",
        "threads": "ours, threads + channels-last, 1 process",
        "processes": f"ours, {args.processes} gloo processes x 1 thread, channels-last"
        + (", compiled" if args.rank_batching == "compiled" else ""),
    }
    print(f"{'case':<68} {'ms':>7} {'tasks/s':>8} {'speed-up':>8}")
    for k, m in medians.items():
        print(f"{labels[k]:<68} {1000 * m:7.0f} {args.batch / m:8.1f} {medians['reference'] / m:7.2f}x")
    print(
        f"the ranks' weights moved by up to {moved:.1e} and differ from each other by at most {spread:.1e}; "
        f"load average at the end {load_average() or '?'}"
    )
    return {**medians, "rank_spread": spread, "rank_moved": moved, "ranks_kept_memory": all(kept)}


if __name__ == "__main__":
    main()

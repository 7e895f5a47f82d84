"""Many visitors adapting at once in one process: torch's kernel threads per visitor against one.

    python -m bench.serving_threads --visitors 20 --rounds 3

The app serves every visitor from one process, each script run on a thread of its own. This starts
``--visitors`` threads that each adapt the app's default models (ProtoNet, MAML, pixel nearest
neighbour) to their own 5-way 1-shot task with 5 queries, ``--rounds`` times, all at once, and
prints the wall time, the process's CPU time and the p50 / p95 of one visitor's round, for each
torch thread count in ``--threads``. It is why the app computes with one torch thread
(`playground.runtime.threads.serve_threads`). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import threading
import time

import torch

from playground.interactive.inference import adapt_and_predict
from playground.zoo.shipped import shipped_models

MODELS = ("protonet_lake", "maml_lake", "pixel_nn")


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(visitors: int, rounds: int, threads: int) -> dict[str, float]:
    """Wall and CPU seconds of every visitor's rounds, and the p50 / p95 of one round."""
    torch.set_num_threads(threads)
    entries = {e.name: e for e in shipped_models() if e.name in MODELS}
    learners = {name: e.load(torch.device("cpu")) for name, e in entries.items()}
    g = torch.Generator().manual_seed(0)
    tasks = [(torch.rand(5, 1, 28, 28, generator=g), torch.arange(5), torch.rand(5, 1, 28, 28, generator=g))]
    tasks = tasks * visitors
    settings = {name: entries[name].adapt_defaults(5, 1) for name in learners}
    times: list[float] = []
    start = threading.Barrier(visitors)

    def visitor(i: int) -> None:
        sx, sy, qx = tasks[i]
        start.wait()
        for _ in range(rounds):
            t = time.perf_counter()
            for name, learner in learners.items():
                adapt_and_predict(name, learner, sx, sy, qx, settings=settings[name])
            times.append(time.perf_counter() - t)

    for name, learner in learners.items():  # warm up
        adapt_and_predict(name, learner, *tasks[0][:2], tasks[0][2], settings=settings[name])
    cpu, wall = cpu_seconds(), time.perf_counter()
    pool = [threading.Thread(target=visitor, args=(i,)) for i in range(visitors)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    times.sort()
    return {
        "threads": threads,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": cpu_seconds() - cpu,
        "p50_s": statistics.median(times),
        "p95_s": times[min(len(times) - 1, int(0.95 * len(times)))],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--visitors", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = p.parse_args(argv)
    print("| torch threads | wall (s) | CPU (s) | one visitor's round p50 / p95 (s) |")
    print("| --- | --- | --- | --- |")
    for n in args.threads:
        r = run(args.visitors, args.rounds, n)
        print(f"| {n} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['p50_s']:.2f} / {r['p95_s']:.2f} |")


if __name__ == "__main__":
    main()

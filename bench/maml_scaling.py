"""How second-order MAML's peak memory and time grow with inner steps, ways and shots.

    python -m bench.maml_scaling --device cpu --threads 2 --plot docs/maml_scaling.png

Peak memory: one meta-iteration (5-way 1-shot, 15 queries per class, meta-batch 32) for inner
steps 1..10, each in a fresh subprocess, ours against the clone-per-task reference of
`bench/reference_maml.py`. On the CPU the figure is the growth of the process's peak resident
memory (``ru_maxrss``) over that iteration; on a GPU ``torch.cuda.max_memory_allocated`` above
what was allocated before it. Both backpropagate task by task (`MAML.meta_train_step`), so
only one task's graph is alive at a time. Time per meta-iteration (a smaller meta-batch, ``--time-batch``):
against inner steps (5-way 1-shot) and against ways and shots (1 inner step). ``--plot`` draws
both (needs matplotlib).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench.maml_speed import load_average, maml_pair
from bench.reference_maml import random_tasks
from playground.runtime.device import resolve_device

STEPS = list(range(1, 11))
WAYS = [5, 10, 20]
SHOTS = [1, 5]


def inner_lr(steps: int) -> float:
    """The step size the benchmarks use: 0.4 for one step, 0.1 for more."""
    return 0.4 if steps == 1 else 0.1


def measure_memory(impl: str, steps: int, device: torch.device, batch: int, queries: int) -> float:
    """MiB that one meta-iteration adds to the peak (run in a fresh process: the peak only grows)."""
    ours, ref = maml_pair({"inner_steps": steps, "inner_lr": inner_lr(steps)}, device, 5)
    tasks = random_tasks(batch, 5, 1, queries, device=device)
    step = ours.meta_train_step if impl == "ours" else ref.meta_train_step
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step(tasks)
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step(tasks)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # KiB on Linux


def memory_in_subprocess(impl: str, steps: int, args: argparse.Namespace) -> float:
    cmd = [sys.executable, "-m", "bench.maml_scaling", "--device", args.device, "--batch", str(args.batch)]
    cmd += ["--queries", str(args.queries), "--child", f"{impl}:{steps}"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["mib"]


def time_per_iteration(
    steps: int,
    ways: int,
    shots: int,
    device: torch.device,
    batch: int,
    queries: int,
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Median milliseconds per meta-iteration of our second-order MAML, after one warm-up iteration."""
    ours, _ = maml_pair({"inner_steps": steps, "inner_lr": inner_lr(steps)}, device, ways)
    tasks = random_tasks(batch, ways, shots, queries, device=device)
    ours.meta_train_step(tasks)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = clock()
        ours.meta_train_step(tasks)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(1000 * (clock() - t))
    return statistics.median(times)


def plot(path: str, memory: dict, by_steps: dict, by_task: dict, caption: str) -> None:
    """Three small panels: peak memory and time against inner steps, time against ways and shots."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: pip install matplotlib, or leave out --plot")
        return
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(11, 3.2))
    for impl, style in (("ours", "o-"), ("reference", "s--")):
        a.plot(STEPS, [memory[impl][s] for s in STEPS], style, label=impl)
    a.set(xlabel="inner steps", ylabel="MiB", title="peak memory of one meta-iteration", ylim=(0, None))
    a.legend()
    b.plot(STEPS, [by_steps[s] for s in STEPS], "o-")
    b.set(
        xlabel="inner steps", ylabel="ms / meta-iteration", title="time vs inner steps (5-way 1-shot)", ylim=(0, None)
    )
    for shots in SHOTS:
        c.plot(WAYS, [by_task[(w, shots)] for w in WAYS], "o-", label=f"{shots}-shot")
    c.set(xlabel="ways", ylabel="ms / meta-iteration", title="time vs ways (1 inner step)", xticks=WAYS, ylim=(0, None))
    c.legend()
    fig.suptitle(caption, fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--batch", type=int, default=32, help="meta-batch for the memory table")
    ap.add_argument("--time-batch", type=int, default=8, help="meta-batch for the time tables")
    ap.add_argument("--queries", type=int, default=15, help="queries per class")
    ap.add_argument("--repeats", type=int, default=2, help="timed meta-iterations per setting (after a warm-up)")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument(
        "--cpu-time", action="store_true", help="time CPU seconds, not wall-clock (busy machine, --threads 1)"
    )
    ap.add_argument("--plot", default=None, help="write a PNG with the three curves here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)  # "impl:steps": one memory measurement
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.child:
        impl, steps = args.child.split(":")
        print(json.dumps({"mib": measure_memory(impl, int(steps), device, args.batch, args.queries)}))
        return

    caption = f"{device}, {torch.get_num_threads()} threads, torch {torch.__version__}, load {load_average()}"
    caption += f"; memory: meta-batch {args.batch}; time: meta-batch {args.time_batch}"
    caption += ", CPU time" if args.cpu_time else ""
    print(
        f"device {device}; {torch.get_num_threads()} threads; torch {torch.__version__}; load average {load_average()}"
    )
    memory: dict[str, dict[int, float]] = {"ours": {}, "reference": {}}
    if not args.skip_memory:
        print(f"\npeak memory of one meta-iteration (MiB): second-order MAML, 5-way 1-shot, meta-batch {args.batch}")
        print(f"{'inner steps':>11} {'ours':>9} {'reference':>10}")
        for steps in STEPS:
            for impl in memory:
                memory[impl][steps] = memory_in_subprocess(impl, steps, args)
            print(f"{steps:>11} {memory['ours'][steps]:9.0f} {memory['reference'][steps]:10.0f}", flush=True)

    b = args.time_batch
    clock = time.process_time if args.cpu_time else time.perf_counter
    kind = "CPU " if args.cpu_time else ""
    print(f"\n{kind}ms per meta-iteration of our second-order MAML vs inner steps: 5-way 1-shot, meta-batch {b}")
    by_steps = {}
    for steps in STEPS:
        by_steps[steps] = time_per_iteration(steps, 5, 1, device, b, args.queries, args.repeats, clock)
        print(f"{steps:>3} steps {by_steps[steps]:9.0f}", flush=True)

    print(
        f"\n{kind}ms per meta-iteration vs ways and shots: 1 inner step, {args.queries} queries/class, meta-batch {b}"
    )
    print(f"{'ways':>5} " + " ".join(f"{f'{s}-shot':>9}" for s in SHOTS))
    by_task = {}
    for ways in WAYS:
        for shots in SHOTS:
            by_task[(ways, shots)] = time_per_iteration(1, ways, shots, device, b, args.queries, args.repeats, clock)
        print(f"{ways:>5} " + " ".join(f"{by_task[(ways, s)]:9.0f}" for s in SHOTS), flush=True)
    print(f"load average at the end: {load_average()}")
    if args.plot:
        if not memory["ours"]:
            print("--plot needs the memory table: leave out --skip-memory")
        else:
            plot(args.plot, memory, by_steps, by_task, caption)


if __name__ == "__main__":
    main()

"""Meta-training throughput of `playground` MAML, Reptile and ProtoNet against clone-per-task references.

    python -m bench.maml_speed --device cpu --threads 2
    python -m bench.maml_speed --device cuda --variants

One table: tasks per second of ours and of the reference in `bench/reference_maml.py` (the
learn2learn way: clone the model per task, ``autograd.grad(create_graph=True)``), measured
side by side in one run: each timed iteration runs ours, then the reference, on the same
meta-batch, and the table shows medians. 5-way 1-shot, 15 queries per class, meta-batch 32,
Conv-4 (64 channels) with transductive batch norm and an N-way head (``head="per_class"``, the
reference's architecture); both start from the same weights. ``--variants`` adds rows for the
other ways to run ours (task batching, memory layout, the generic module forward) and
``--compile`` rows for one second-order step and for Reptile with ``task_batching="compiled"``
(each task's meta-gradient, or Reptile's fit, compiled by ``torch.compile``; compiling takes a
minute or two on a CPU). ``--bf16`` adds ours under bfloat16 autocast (``train --precision bf16``;
threads with channels-last) against the float32 reference, and against the reference under the same
autocast.

The last two columns are each side's minor page faults per meta-iteration, in thousands: pages
the kernel mapped and zeroed because the allocator had handed freed memory back. On a CPU they
cost the reference much of its time with glibc's defaults; ``--malloc keep`` keeps freed memory
for both sides (`playground/runtime/allocator.py`), and ``--block N`` times N iterations of a side in a row
instead of strict turns, so neither side runs on the heap the other just left.

    python -m bench.maml_speed --device cpu --threads 2 --compile --match "2nd order, 1 step" --block 4 --malloc keep
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from bench.malloc_flag import add_malloc_flag, apply_malloc_flag
from bench.reference_maml import ReferenceMAML, ReferenceReptile, load_from_playground, random_tasks, reference_model
from playground.algorithms import create_learner
from playground.algorithms.maml import MAML
from playground.data.episodes import TaskBatch
from playground.models.conv4 import to_channels_last
from playground.runtime.allocator import minor_page_faults
from playground.runtime.device import resolve_device
from playground.runtime.precision import training_autocast

Step = Callable[[TaskBatch], object]


@dataclass
class Case:
    """One row: a learner of ours, and the reference it is compared with (None: no reference)."""

    label: str
    ours: Step
    reference: Step | None = None


def maml_pair(opts: dict, device: torch.device, n_way: int) -> tuple[MAML, ReferenceMAML]:
    """Ours and the reference from the same initial weights."""
    torch.manual_seed(0)
    ours = create_learner("maml", n_way=n_way, head="per_class", **opts).to(device)
    model = load_from_playground(reference_model(n_way).to(device), ours)
    ref = ReferenceMAML(model, ours.inner_lr, ours.inner_steps, ours.first_order, ours.outer_lr)
    return ours, ref


def in_bf16(step: Step, device: torch.device) -> Step:
    """``step`` under bfloat16 autocast, as `playground train --precision bf16` runs it."""

    def run(tasks: TaskBatch) -> object:
        with training_autocast(device, "bf16"):
            return step(tasks)

    return run


# The bf16 rows' settings on a CPU: the fastest eager ones in float32.
FASTEST_CPU = {"task_batching": "threads", "memory_format": "channels_last"}


def bf16_cases(label: str, ours: Step, reference: Step, device: torch.device, how: str = "") -> list[Case]:
    """``ours`` in bfloat16 autocast against the float32 reference, then against the reference in bf16 too."""
    how = how or ("threads, NHWC, bf16" if device.type == "cpu" else "bf16")
    return [
        Case(f"  {label}: {how}", in_bf16(ours, device), reference),
        Case(f"  {label}: {how} (ref. bf16)", in_bf16(ours, device), in_bf16(reference, device)),
    ]


def cases(device: torch.device, n_way: int, variants: bool, compile_: bool, bf16: bool = False) -> list[Case]:
    """The rows of the table."""
    so1 = {"inner_steps": 1, "inner_lr": 0.4}
    so5 = {"inner_steps": 5, "inner_lr": 0.1}
    fo5 = {"inner_steps": 5, "inner_lr": 0.1, "first_order": True}
    out = []
    for label, opts in (
        ("MAML 2nd order, 1 step", so1),
        ("MAML 2nd order, 5 steps", so5),
        ("MAML 1st order, 5 steps", fo5),
    ):
        ours, ref = maml_pair(opts, device, n_way)
        out.append(Case(label, ours.meta_train_step, ref.meta_train_step))
        if compile_ and opts is so1:  # compiling the 5-step graphs takes far longer
            for name, extra in (("", {}), (", NHWC", {"memory_format": "channels_last"})):
                c, _ = maml_pair({**opts, "task_batching": "compiled", **extra}, device, n_way)
                out.append(Case(f"  {label}: torch.compile{name}", c.meta_train_step, ref.meta_train_step))
            if bf16:
                c, _ = maml_pair({**opts, "task_batching": "compiled", "memory_format": "channels_last"}, device, n_way)
                out += bf16_cases(label, c.meta_train_step, ref.meta_train_step, device, "torch.compile, NHWC, bf16")
        if bf16:
            fastest = {**opts, **FASTEST_CPU} if device.type == "cpu" else opts
            out += bf16_cases(label, maml_pair(fastest, device, n_way)[0].meta_train_step, ref.meta_train_step, device)
        if not variants:
            continue
        for name, extra in (
            ("loop", {"task_batching": "loop"}),
            ("loop, NHWC", {"task_batching": "loop", "memory_format": "channels_last"}),
            ("threads", {"task_batching": "threads"}),
            ("threads, NHWC", {"task_batching": "threads", "memory_format": "channels_last"}),
            ("grouped", {"task_batching": "grouped"}),
            ("grouped, NHWC", {"task_batching": "grouped", "memory_format": "channels_last"}),
            ("vmap", {"task_batching": "vmap"}),
        ):
            v, _ = maml_pair({**opts, **extra}, device, n_way)
            out.append(Case(f"  {label}: {name}", v.meta_train_step, ref.meta_train_step))
        generic, _ = maml_pair({**opts, "task_batching": "loop"}, device, n_way)
        generic._fast_body = False  # the module's own forward (ReLU before pooling, NCHW): the code before this bench
        out.append(Case(f"  {label}: loop, module forward", generic.meta_train_step, ref.meta_train_step))

    def reptile(**extra) -> MAML:
        """Ours, from the seed every Reptile row starts from: 5 inner SGD steps of 0.1, an N-way head."""
        torch.manual_seed(0)
        return create_learner("reptile", n_way=n_way, head="per_class", inner_steps=5, inner_lr=0.1, **extra).to(device)

    base = reptile()
    ref = ReferenceReptile(load_from_playground(reference_model(n_way).to(device), base), 0.1, 5, base.outer_lr)
    out.append(Case("Reptile, 5 steps", base.meta_train_step, ref.meta_train_step))
    rows = []
    if compile_:
        rows += [("torch.compile", {"task_batching": "compiled"})]
        rows += [("torch.compile, NHWC", {"task_batching": "compiled", "memory_format": "channels_last"})]
    if variants:
        rows += [
            ("NHWC", {"memory_format": "channels_last"}),
            ("threads", {"task_batching": "threads"}),
            ("threads, NHWC", {"task_batching": "threads", "memory_format": "channels_last"}),
        ]
    for name, extra in rows:
        out.append(Case(f"  Reptile, 5 steps: {name}", reptile(**extra).meta_train_step, ref.meta_train_step))
    if bf16:
        fastest = reptile(**(FASTEST_CPU if device.type == "cpu" else {})).meta_train_step
        out += bf16_cases("Reptile, 5 steps", fastest, ref.meta_train_step, device)
        if compile_:
            compiled = reptile(task_batching="compiled", memory_format="channels_last").meta_train_step
            out += bf16_cases("Reptile, 5 steps", compiled, ref.meta_train_step, device, "torch.compile, NHWC, bf16")

    torch.manual_seed(0)
    protonet = create_learner("protonet", n_way=n_way).to(device)
    out.append(Case("ProtoNet", protonet.meta_train_step))
    if bf16:
        torch.manual_seed(0)
        bf = create_learner("protonet", n_way=n_way).to(device)
        out.append(Case("  ProtoNet: bf16", in_bf16(bf.meta_train_step, device)))
    if variants:
        torch.manual_seed(0)
        cl = create_learner("protonet", n_way=n_way).to(device)
        with torch.no_grad():
            for m in cl.modules():
                if isinstance(m, nn.Conv2d):
                    # NHWC weights make every convolution (and so batch norm and pooling) run NHWC.
                    m.weight.data = to_channels_last(m.weight.data)
        out.append(Case("  ProtoNet: channels-last", cl.meta_train_step))
    return out


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (Linux), or "" where unknown."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return ""


def timed(fn: Step, tasks: TaskBatch, device: torch.device, clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds for one meta-iteration."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = clock()
    fn(tasks)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - t


def side_by_side(
    case: Case, batches: list[TaskBatch], steps: int, block: int, time_one: Callable[[Step, TaskBatch], float]
) -> tuple[list[tuple[float, int]], list[tuple[float, int]]]:
    """(seconds, minor page faults) of ``steps`` meta-iterations of ours and of the reference, taken in turns.

    ``block=1`` alternates single iterations: ours, reference, ours, ... . ``block=N`` runs N + 1
    iterations of one side, then of the other, and keeps the last N of each run: each side is
    timed as it runs in training, one step after another, not on the heap the other just left.
    """
    ours: list[tuple[float, int]] = []
    ref: list[tuple[float, int]] = []
    sides = [(case.ours, ours)] + ([(case.reference, ref)] if case.reference is not None else [])
    i = 0
    while len(ours) < steps:
        for fn, out in sides:
            for j in range(block + (block > 1)):
                faults = minor_page_faults()
                t = time_one(fn, batches[(i + j) % len(batches)])
                if (block == 1 or j > 0) and len(out) < steps:
                    out.append((t, minor_page_faults() - faults))
        i += block
    return ours, ref


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--steps", type=int, default=3, help="timed meta-iterations per row (after --warmup)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32, help="tasks per meta-batch")
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--queries", type=int, default=15, help="queries per class")
    ap.add_argument("--variants", action="store_true", help="also time the other ways to run ours")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (compiling takes minutes)")
    ap.add_argument(
        "--bf16",
        action="store_true",
        help="also time ours in bfloat16 autocast (train --precision bf16), against the reference in fp32 and in bf16",
    )
    ap.add_argument("--match", default=None, help="time only the rows whose label contains this text")
    ap.add_argument(
        "--block",
        type=int,
        default=1,
        help="iterations of one side in a row (after one untimed), then of the other (default 1: strict turns)",
    )
    add_malloc_flag(ap)
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time the process's CPU seconds, not wall-clock: steadier on a busy machine (use with --threads 1)",
    )
    args = ap.parse_args()
    if args.block < 1:
        ap.error(f"--block must be at least 1, got {args.block}")
    apply_malloc_flag(ap, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    # Random pixels: the time per step does not depend on what the images show.
    batches = [random_tasks(args.batch, args.ways, args.shots, args.queries, device=device, seed=s) for s in range(2)]
    load = load_average()
    clock = time.process_time if args.cpu_time else time.perf_counter
    print(
        f"device {device}; {torch.get_num_threads()} threads; torch {torch.__version__}; "
        f"{args.ways}-way {args.shots}-shot, {args.queries} queries/class, meta-batch {args.batch}; "
        f"median of {args.steps} iterations"
        + (f" in blocks of {args.block}" if args.block > 1 else "")
        + f"; malloc {args.malloc}"
        + (" (CPU time)" if args.cpu_time else "")
        + (f"; load average {load}" if load else "")
    )
    print(
        f"{'case':<58} {'ours ms':>9} {'tasks/s':>8} {'ref ms':>9} {'tasks/s':>8} {'speed-up':>8}"
        f" {'ours kflt':>9} {'ref kflt':>9}"
    )
    for case in cases(device, args.ways, args.variants, args.compile, args.bf16):
        if args.match and args.match.lower() not in case.label.lower():
            continue
        t = time.perf_counter()
        for i in range(args.warmup):
            case.ours(batches[i % 2])
            if case.reference is not None:
                case.reference(batches[i % 2])
        first = time.perf_counter() - t
        ours, ref = side_by_side(case, batches, args.steps, args.block, lambda fn, b: timed(fn, b, device, clock))
        o = statistics.median(t for t, _ in ours)
        row = f"{case.label:<58} {1000 * o:9.0f} {args.batch / o:8.1f}"
        if ref:
            r = statistics.median(t for t, _ in ref)
            row += f" {1000 * r:9.0f} {args.batch / r:8.1f} {r / o:7.2f}x"
        else:
            row += f" {'-':>9} {'-':>8} {'-':>8}"
        row += f" {statistics.median(f for _, f in ours) / 1000:9.0f}"
        row += f" {statistics.median(f for _, f in ref) / 1000:9.0f}" if ref else f" {'-':>9}"
        if first > 10 * (o + (statistics.median(t for t, _ in ref) if ref else 0)):
            row += f"  (warm-up {first:.0f} s)"
        print(row, flush=True)
    print(f"load average at the end: {load_average() or 'unknown'}")


if __name__ == "__main__":
    main()

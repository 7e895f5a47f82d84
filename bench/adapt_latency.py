"""Adapt + predict latency of each shipped model on app-sized tasks (p50/p95 over repeats).

    python -m bench.adapt_latency --device cpu --threads 2

The default task is the app's target case: 5-way 5-shot with 10 queries; MAML with 10 inner steps.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from playground.data.protocols import load_splits
from playground.device import resolve_device
from playground.episodes import TaskSampler
from playground.inference import adapt_and_predict
from playground.zoo import shipped_models


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--ways", type=int, nargs="+", default=[5])
    ap.add_argument("--shots", type=int, nargs="+", default=[5])
    ap.add_argument("--queries", type=int, default=10, help="queries per task (not per class)")
    ap.add_argument("--maml-steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    test = load_splits("lake", rotations=False).test
    models = {m.name: m.load(device) for m in shipped_models()}
    print(f"device {device}; {torch.get_num_threads()} threads; torch {torch.__version__}")
    print(f"{'model':<16} {'task':<14} {'steps':>5} {'adapt p50':>10} {'total p50':>10} {'total p95':>10}  (ms)")
    for n in args.ways:
        for k in args.shots:
            sampler = TaskSampler(test, n, k, 1, seed=0)
            tasks = [sampler.sample() for _ in range(args.repeats + 3)]
            for name, learner in models.items():
                steps = args.maml_steps if any(o.name == "n_steps" for o in learner.adapt_options()) else None
                adapt, total = [], []
                for i, t in enumerate(tasks):
                    qx = t.query_x.repeat(args.queries // n + 1, 1, 1, 1)[: args.queries]
                    t0 = time.perf_counter()
                    r = adapt_and_predict(name, learner, t.support_x, t.support_y, qx, settings={"n_steps": steps})
                    dt = 1000 * (time.perf_counter() - t0)
                    if i >= 3:  # the first calls warm up allocators and torch.func
                        adapt.append(r.adapt_ms)
                        total.append(dt)
                print(
                    f"{name:<16} {f'{n}-way {k}-shot':<14} {steps if steps is not None else '-':>5} "
                    f"{statistics.median(adapt):10.1f} {statistics.median(total):10.1f} "
                    f"{percentile(total, 0.95):10.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

"""Adapt + predict latency of each shipped model on app-sized tasks (p50/p95 over repeats).

    python -m bench.adapt_latency --device cpu --threads 2
    python -m bench.adapt_latency --ways 2 5 10 20 --shots 1 5 --markdown

The default task is the app's target case: 5-way 5-shot with 10 queries; the models with
inner steps (MAML, Meta-SGD, ANIL, Reptile, the LSTM meta-learner) take 10. ``--markdown``
prints one table: a row per model, a column per task, adapt + predict p50 / p95 in each cell.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from bench.malloc_flag import add_malloc_flag, apply_malloc_flag
from playground.algorithms.base import MetaLearner
from playground.data.episodes import TaskSampler
from playground.data.protocols import ClassDataset, load_splits
from playground.interactive.inference import adapt_and_predict
from playground.runtime.device import resolve_device
from playground.zoo.shipped import shipped_models

WARM_UP = 3  # the first calls warm up allocators and torch.func; they are not counted


@dataclass
class Latency:
    """One model on one task size; milliseconds."""

    model: str
    n_way: int
    k_shot: int
    steps: int | None
    adapt_p50: float
    total_p50: float
    total_p95: float


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def measure(
    models: dict[str, MetaLearner],
    ways: list[int],
    shots: list[int],
    queries: int = 10,
    steps: int = 10,
    repeats: int = 30,
    seed: int = 0,
    test: ClassDataset | None = None,
) -> Iterator[Latency]:
    """Time `adapt_and_predict` of every model on ``repeats`` evaluation-alphabet tasks of each size, row by row."""
    test = test if test is not None else load_splits("lake", rotations=False).test
    for n in ways:
        for k in shots:
            sampler = TaskSampler(test, n, k, 1, seed=seed)
            tasks = [sampler.sample() for _ in range(repeats + WARM_UP)]
            for name, learner in models.items():
                has_steps = any(o.name == "n_steps" for o in learner.adapt_options())
                settings = {"n_steps": steps} if has_steps else {}
                adapt, total = [], []
                for i, t in enumerate(tasks):
                    qx = t.query_x.repeat(queries // n + 1, 1, 1, 1)[:queries]
                    t0 = time.perf_counter()
                    r = adapt_and_predict(name, learner, t.support_x, t.support_y, qx, settings=settings)
                    dt = 1000 * (time.perf_counter() - t0)
                    if i >= WARM_UP:
                        adapt.append(r.adapt_ms)
                        total.append(dt)
                yield Latency(
                    name,
                    n,
                    k,
                    steps if has_steps else None,
                    statistics.median(adapt),
                    statistics.median(total),
                    percentile(total, 0.95),
                )


def ms(value: float) -> str:
    """Milliseconds for a table cell: a decimal below 10 ms, where it still says something."""
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def markdown_table(rows: list[Latency]) -> str:
    """A row per model, a column per task size; each cell adapt + predict p50 / p95 in ms."""
    tasks = list(dict.fromkeys((r.n_way, r.k_shot) for r in rows))
    models = list(dict.fromkeys(r.model for r in rows))
    cell = {(r.model, r.n_way, r.k_shot): r for r in rows}
    lines = [
        "| model | steps | " + " | ".join(f"{n}-way {k}-shot" for n, k in tasks) + " |",
        "| --- | --- | " + " | ".join("---" for _ in tasks) + " |",
    ]
    for m in models:
        steps = next(r.steps for r in rows if r.model == m)
        cells = []
        for n, k in tasks:
            r = cell.get((m, n, k))
            cells.append(f"{ms(r.total_p50)} / {ms(r.total_p95)}" if r else "–")
        lines.append(f"| {m} | {steps if steps is not None else '–'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Latency]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--ways", type=int, nargs="+", default=[5])
    ap.add_argument("--shots", type=int, nargs="+", default=[5])
    ap.add_argument("--queries", type=int, default=10, help="queries per task (not per class)")
    ap.add_argument("--steps", "--maml-steps", type=int, default=10, help="inner steps of models that take them")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--models", nargs="+", default=None, help="shipped model names (default: all)")
    ap.add_argument("--markdown", action="store_true", help="print one markdown table at the end")
    add_malloc_flag(ap)
    args = ap.parse_args(argv)
    apply_malloc_flag(ap, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    shipped = {m.name: m for m in shipped_models()}
    names = args.models or list(shipped)
    unknown = [n for n in names if n not in shipped]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; shipped: {', '.join(shipped)}")
    models = {n: shipped[n].load(device) for n in names}
    print(f"device {device}; {torch.get_num_threads()} threads; torch {torch.__version__}; malloc {args.malloc}")
    print(f"{'model':<16} {'task':<14} {'steps':>5} {'adapt p50':>10} {'total p50':>10} {'total p95':>10}  (ms)")
    test = load_splits("lake", rotations=False).test
    rows = []
    for r in measure(models, args.ways, args.shots, args.queries, args.steps, args.repeats, test=test):
        rows.append(r)
        print(
            f"{r.model:<16} {f'{r.n_way}-way {r.k_shot}-shot':<14} {r.steps if r.steps is not None else '-':>5} "
            f"{r.adapt_p50:10.1f} {r.total_p50:10.1f} {r.total_p95:10.1f}",
            flush=True,
        )
    if args.markdown:
        print()
        print(markdown_table(rows))
    return rows


if __name__ == "__main__":
    main()

"""The compare page's default clicks, timed: the benchmark and the curves with the default models.

    OMP_NUM_THREADS=1 python -m bench.compare_defaults
    python -m bench.compare_defaults --episodes 200 --curve-episodes 20 --steps 10

Computes what the page computes on those clicks (`compare_on_benchmark`, then a `shot_curve` for every model
and a `step_curve` for each with inner steps, on the evaluation alphabets, each model adapting with its card's
settings) inside `benchmark_turn`, so with the page's thread count. Beside each wall time it prints the page's
estimate made before the click, from each model's pace as measured when it was loaded (`time_episode`).
"""

from __future__ import annotations

import argparse
import time

import torch

from playground.data.omniglot import load_omniglot
from playground.data.protocols import evaluation_alphabet_dataset
from playground.evaluation.compare import (
    BENCHMARK_EPISODES,
    CURVE_EPISODES,
    CURVE_STEPS,
    benchmark_turn,
    benchmark_work,
    compare_on_benchmark,
    curves_work,
    shot_curve,
    step_curve,
)
from playground.interactive.explain import steps_option
from playground.zoo.shipped import default_selection, shipped_models

SHOTS = (1, 2, 3, 4, 5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=None, help="shipped model names (default: the app's default set)")
    ap.add_argument("--ways", type=int, default=5)
    ap.add_argument("--shots", type=int, default=1, help="the benchmark's shots, and the step curve's")
    ap.add_argument("--episodes", type=int, default=BENCHMARK_EPISODES)
    ap.add_argument("--curve-episodes", type=int, default=CURVE_EPISODES)
    ap.add_argument("--steps", type=int, default=CURVE_STEPS, help="the step curve's highest inner steps")
    args = ap.parse_args()
    entries = {e.name: e for e in shipped_models()}
    names = args.models or default_selection(list(entries))
    learners = {n: entries[n].load("cpu") for n in names}  # loading measures each model's pace, as in the app
    data = evaluation_alphabet_dataset(load_omniglot())
    n, k = args.ways, args.shots
    settings = {name: entries[name].adapt_defaults(n, k) for name in names}

    def card(name: str, shots: int) -> dict[str, float]:
        return entries[name].adapt_defaults(n, shots)

    with benchmark_turn():
        print(f"{', '.join(names)}; {n}-way {k}-shot; {torch.get_num_threads()} torch thread(s)")
        work = benchmark_work(learners, n, k, args.episodes, settings)
        t0 = time.perf_counter()
        rows = compare_on_benchmark(learners, data, n, k, args.episodes, settings=settings)
        took = time.perf_counter() - t0
        print(f"benchmark, {args.episodes} episodes: {took:.1f} s (estimated {work.summary()})")
        for r in rows:
            print(f"  {r.model:<16} {r.seconds:6.1f} s  {r.result.format()}")

        work = curves_work(learners, n, k, args.curve_episodes, args.steps, SHOTS, card)
        t0, parts = time.perf_counter(), []
        for name, learner in learners.items():
            t1 = time.perf_counter()
            shot_curve(
                learner, data, n, SHOTS, args.curve_episodes, settings=lambda shots, name=name: card(name, shots)
            )
            parts.append(f"{name} shots {time.perf_counter() - t1:.1f} s")
            high = steps_option(learner)
            if high is not None:
                t1 = time.perf_counter()
                step_curve(learner, data, n, k, list(range(min(args.steps, high) + 1)), args.curve_episodes)
                parts.append(f"{name} steps {time.perf_counter() - t1:.1f} s")
        took = time.perf_counter() - t0
        print(f"curves, {args.curve_episodes} episodes per point, steps up to {args.steps}: {took:.1f} s")
        print(f"  (estimated {work.summary()})")
        print("  " + "; ".join(parts))


if __name__ == "__main__":
    main()

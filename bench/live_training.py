"""What a live run of the app's Meta-train live page reaches: 5-way 1-shot test accuracy after a budget.

    python -m bench.live_training --algorithm protonet maml --budget 60 --episodes 600

Each run goes through the page's own path (`playground.training.live.scheduler`: a spawned process with
one CPU left free, the shipped model's recipe, the page's default task shape), then the model it hands back
is evaluated on ``--episodes`` seeded 5-way 1-shot episodes of the evaluation alphabets (15 queries per
class, as the model cards). Prints one line per algorithm, with the 95% interval and the load average,
since on a shared machine the figure depends on what else runs.
"""

from __future__ import annotations

import argparse
import os
import time

from playground.data.protocols import load_splits
from playground.evaluation.few_shot import evaluate_few_shot
from playground.training.live import LiveSettings, TrainingScheduler, live_algorithms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", nargs="+", default=["protonet", "maml"], choices=live_algorithms())
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--episodes", type=int, default=600)
    args = parser.parse_args(argv)
    test = load_splits("lake", rotations=False).test
    runner = TrainingScheduler(abandon_after=float("inf"))
    for algorithm in args.algorithm:
        load = os.getloadavg()[0]
        job = runner.submit(LiveSettings(algorithm, budget=args.budget))
        while not (view := job.view()).finished:
            time.sleep(0.5)
        learner = job.learner()
        if learner is None:
            raise SystemExit(f"{algorithm}: {view.message}")
        result = evaluate_few_shot(learner, test, 5, 1, 15, args.episodes, seed=0)
        print(
            f"{algorithm}: {args.budget:g} s, {view.iterations} iterations, {runner.threads} torch thread(s), "
            f"load {load:.1f}: 5-way 1-shot {result.format()} over {args.episodes} episodes"
        )


if __name__ == "__main__":
    main()

"""How long each figure of the explorer and compare pages takes, on the app's target task.

    python -m bench.explain_speed --threads 2

A 5-way 5-shot task with 10 queries from the evaluation alphabets. Each figure's time is
everything between a click and the figure's JSON being ready for the browser: adapting, the
embedding, the projection (t-SNE uncached: the cache is cleared before every repeat), building
the plotly figure and serialising it. Also: 100 benchmark episodes per model (the compare page's
default), each model on the same episodes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from playground.data.episodes import TaskSampler
from playground.data.omniglot import load_omniglot
from playground.data.protocols import evaluation_alphabet_dataset
from playground.evaluation.compare import compare_on_benchmark
from playground.figures.explorer import (
    confusion_figure,
    decision_heatmap,
    embedding_figure,
    probability_steps,
    steps_animation,
)
from playground.interactive.explain import (
    adaptation_steps,
    confusion_matrix,
    decision_matrices,
    embedding_view,
    steps_option,
)
from playground.interactive.projection import CACHE
from playground.runtime.device import resolve_device
from playground.zoo.shipped import shipped_models


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and worst time (ms) of ``fn`` over ``repeats`` runs after one warm-up, t-SNE cache cleared each run."""
    fn()
    times = []
    for _ in range(repeats):
        CACHE.clear()
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--models", nargs="*", default=None, help="default: every shipped model")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dataset = evaluation_alphabet_dataset(load_omniglot())
    task = TaskSampler(dataset, 5, 5, 2, seed=0).sample()
    sx, sy, qx, qy = task.support_x, task.support_y, task.query_x, task.query_y.tolist()
    names = [f"class {i}" for i in range(5)]
    images = list((qx[:, 0] * 255).byte().numpy())
    entries = [m for m in shipped_models() if args.models is None or m.name in args.models]
    models = {m.name: m.load(device) for m in entries}
    print(f"device {device}; {torch.get_num_threads()} threads; torch {torch.__version__}")
    print("5-way 5-shot task, 10 queries; ms, median / worst of", args.repeats)
    heads = ["embedding t-SNE", "embedding PCA", "decisions", "10 steps PCA", "10 steps t-SNE"]
    print(f"{'model':<16}" + "".join(f"{h:>17}" for h in heads))
    for name, learner in models.items():

        def embedding(method: str, learner=learner) -> None:
            view = embedding_view(learner, sx, sy, qx, names, qy, method=method)
            embedding_figure(view).to_json()

        def decisions(learner=learner) -> None:
            mats = decision_matrices(learner, sx, sy, qx)
            for m in mats:
                decision_heatmap(m.values.numpy(), names, names, m.title, m.unit, images).to_json()
            confusion_figure(confusion_matrix(qy, mats[0].values.argmax(-1).tolist(), 5), names).to_json()

        def steps(method: str, learner=learner) -> None:
            run = adaptation_steps(learner, sx, sy, qx, 10, qy, method=method)
            steps_animation(run, names).to_json()
            probability_steps(run, names, 0).to_json()

        cells = [timed(lambda: embedding("tsne"), args.repeats), timed(lambda: embedding("pca"), args.repeats)]
        cells.append(timed(decisions, args.repeats))
        gradient = steps_option(learner) is not None
        cells += [timed(lambda m=m: steps(m), args.repeats) if gradient else None for m in ("pca", "tsne")]
        print(f"{name:<16}" + "".join(f"{f'{c[0]:.0f} / {c[1]:.0f}' if c else '–':>17}" for c in cells), flush=True)
    print(f"\n{args.episodes} benchmark episodes, 5-way 5-shot, 5 queries per class (the compare page's default)")
    for row in compare_on_benchmark(models, dataset, 5, 5, args.episodes):
        print(f"{row.model:<16} {row.seconds:6.2f} s   {row.result.format()}", flush=True)


if __name__ == "__main__":
    main()

"""Several models on the same task or on the same benchmark episodes: what the compare page shows.

Fairness comes first: every model sees identical episodes (sampled once, then handed to each),
and a user's task is scored the same way for every model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from playground.algorithms import MetaLearner
from playground.data.protocols import ClassDataset
from playground.episodes import TaskBatch, TaskSampler
from playground.evaluation import EvalResult
from playground.explain import steps_option
from playground.inference import adapt_and_predict, adapt_kwargs

Progress = Callable[[int, int], None]


@dataclass
class LeaveOneOut:
    """Each support image predicted by the model adapted to the rest of the support set."""

    predicted: list[int]
    true: list[int]
    adapt_ms: float  # mean time of one adaptation

    @property
    def accuracy(self) -> float:
        return sum(p == t for p, t in zip(self.predicted, self.true)) / len(self.true)


def leave_one_out(
    learner: MetaLearner,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    settings: Mapping[str, float] | None = None,
    progress: Progress | None = None,
) -> LeaveOneOut:
    """Accuracy without labelled queries: hold out each support image in turn (every class needs K >= 2)."""
    counts = torch.bincount(support_y.cpu())
    if len(counts) < 2 or int(counts.min()) < 2:
        raise ValueError(
            "leave-one-out needs at least 2 examples of every class (holding one out must leave one to learn from)"
        )
    device = learner.device
    kwargs = adapt_kwargs(learner, settings or {})
    predicted, elapsed = [], 0.0
    n = len(support_y)
    for i in range(n):
        keep = torch.arange(n) != i
        t0 = time.perf_counter()
        predictor = learner.adapt(support_x[keep].to(device), support_y[keep].to(device), **kwargs)
        elapsed += time.perf_counter() - t0
        with torch.no_grad():
            predicted.append(int(predictor.predict(support_x[i : i + 1].to(device))[0]))
        if progress is not None:
            progress(i + 1, n)
    return LeaveOneOut(predicted, support_y.cpu().tolist(), 1000 * elapsed / n)


@dataclass
class TaskScore:
    """One model on a user's task: how well it did, how it was scored, and how long it took."""

    model: str
    accuracy: float | None
    adapt_ms: float
    predict_ms: float | None  # None for leave-one-out (one image per adaptation)
    scored_on: str
    note: str = ""  # e.g. why adaptation failed

    def row(self) -> dict:
        return {
            "model": self.model,
            "accuracy": self.accuracy,
            "adapt (ms)": self.adapt_ms,
            "predict (ms)": self.predict_ms,
            "scored on": self.scored_on,
            "note": self.note,
        }


def score_on_task(
    models: Mapping[str, MetaLearner],
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    query_labels: Sequence[int | None],
    progress: Callable[[int, int, str], None] | None = None,
) -> list[TaskScore]:
    """Every model on the same user task: accuracy on the labelled queries, or, when none is
    labelled, leave-one-out over the support set (which needs K >= 2)."""
    labelled = sum(label is not None for label in query_labels)
    scores = []
    for i, (name, learner) in enumerate(models.items()):
        if labelled:
            r = adapt_and_predict(name, learner, support_x, support_y, query_x, list(query_labels))
            scores.append(TaskScore(name, r.accuracy, r.adapt_ms, r.predict_ms, f"{labelled} queries", r.error or ""))
        else:
            loo = leave_one_out(learner, support_x, support_y)
            scores.append(TaskScore(name, loo.accuracy, loo.adapt_ms, None, f"leave-one-out, {len(support_y)} images"))
        if progress is not None:
            progress(i + 1, len(models), name)
    return scores


def benchmark_episodes(
    dataset: ClassDataset, n_way: int, k_shot: int, episodes: int, n_query: int = 5, seed: int = 0, batch: int = 25
) -> list[TaskBatch]:
    """The episodes every model is scored on, sampled once (seeded) in batches."""
    if not 1 <= episodes <= 600:
        raise ValueError(f"episodes must be between 1 and 600 (got {episodes})")
    n_query = min(n_query, dataset.drawings_per_class - k_shot)
    sampler = TaskSampler(dataset, n_way, k_shot, n_query, seed=seed)
    sizes = [batch] * (episodes // batch) + ([episodes % batch] if episodes % batch else [])
    return [sampler.sample_batch(s) for s in sizes]


@dataclass
class BenchmarkRow:
    model: str
    result: EvalResult
    seconds: float


def score_on_episodes(
    learner: MetaLearner,
    batches: Sequence[TaskBatch],
    n_steps: int | None = None,
    progress: Progress | None = None,
    inner_lr: float | None = None,
) -> EvalResult:
    """Query accuracy of each episode, in the order given (``n_steps`` of ``inner_lr``: the learner's own if None)."""
    accs: list[float] = []
    total = sum(len(b) for b in batches)
    for b in batches:
        accs += learner.episode_accuracies(b.to(learner.device), n_steps=n_steps, inner_lr=inner_lr).tolist()
        if progress is not None:
            progress(len(accs), total)
    n_way = int(batches[0].support_y.max()) + 1
    k_shot = batches[0].support_y.shape[1] // n_way
    return EvalResult(accs, n_way, k_shot, batches[0].query_y.shape[1] // n_way)


def compare_on_benchmark(
    models: Mapping[str, MetaLearner],
    dataset: ClassDataset,
    n_way: int,
    k_shot: int,
    episodes: int = 100,
    seed: int = 0,
    settings: Mapping[str, Mapping[str, float]] | None = None,
    progress: Progress | None = None,
) -> list[BenchmarkRow]:
    """Every model on the same seeded episodes: mean accuracy with its 95% CI, and the time it took.

    ``settings`` may set a gradient-based model's test-time ``n_steps`` and ``inner_lr`` by name (each checked
    against its range; e.g. those its card was measured with, `ModelEntry.adapt_defaults`).
    ``progress(done, total)`` counts episodes over all models.
    """
    batches = benchmark_episodes(dataset, n_way, k_shot, episodes, seed=seed)
    rows, done, total = [], 0, episodes * len(models)
    for name, learner in models.items():
        kwargs = adapt_kwargs(learner, (settings or {}).get(name, {}))

        def tick(k: int, _: int, base: int = done) -> None:
            if progress is not None:
                progress(base + k, total)

        t0 = time.perf_counter()
        result = score_on_episodes(learner, batches, kwargs.get("n_steps"), tick, inner_lr=kwargs.get("inner_lr"))
        rows.append(BenchmarkRow(name, result, time.perf_counter() - t0))
        done += episodes
    return rows


def shot_curve(
    learner: MetaLearner,
    dataset: ClassDataset,
    n_way: int,
    shots: Sequence[int] = (1, 2, 3, 4, 5),
    episodes: int = 100,
    seed: int = 0,
) -> list[EvalResult]:
    """Accuracy at each number of shots (the same seed at each, so every model meets the same classes)."""
    return [score_on_episodes(learner, benchmark_episodes(dataset, n_way, k, episodes, seed=seed)) for k in shots]


def step_curve(
    learner: MetaLearner,
    dataset: ClassDataset,
    n_way: int,
    k_shot: int,
    steps: Sequence[int],
    episodes: int = 100,
    seed: int = 0,
) -> list[EvalResult]:
    """Accuracy after each number of inner steps (gradient-based learners), on the same episodes."""
    high = steps_option(learner)
    if high is None:
        raise ValueError(f"{learner.name} has no inner loop: accuracy does not depend on inner steps")
    bad = [s for s in steps if not 0 <= s <= high]
    if bad:
        raise ValueError(f"inner steps must be between 0 and {high} (got {bad})")
    batches = benchmark_episodes(dataset, n_way, k_shot, episodes, seed=seed)
    return [score_on_episodes(learner, batches, n_steps=s) for s in steps]

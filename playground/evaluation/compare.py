"""Several models on the same task or on the same benchmark episodes: what the compare page shows.

Fairness comes first: every model sees identical episodes (sampled once, then handed to each),
and a user's task is scored the same way for every model.

A benchmark is the heaviest thing one click of the app can start, so its work is estimated before
it runs (`benchmark_work`, `curves_work`, in image passes) and refused above `MAX_WORK_PER_CLICK`;
it can be stopped between any two episodes (``should_stop``), and `benchmark_turn` lets one
benchmark of the whole process compute at a time, on one core fewer than the machine has. The estimate
is in seconds too once each model's pace on this server is measured (`playground.evaluation.pace`, `time_episode`).

A figure from few episodes is called so beside it (`few_episodes_note`, `accuracy_text`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from playground.algorithms import MetaLearner
from playground.data.episodes import TaskBatch, TaskSampler
from playground.data.protocols import ClassDataset
from playground.evaluation.few_shot import EvalResult
from playground.evaluation.pace import about, record, seconds_per_pass
from playground.interactive.explain import steps_option
from playground.interactive.inference import adapt_and_predict, adapt_kwargs
from playground.runtime.threads import usable_cpus

Progress = Callable[[int, int], None]
StopCheck = Callable[[], bool]

# Queries per class in the benchmark's episodes (`benchmark_episodes`): they count towards its work.
BENCHMARK_QUERIES = 5

# The most work one click may start, in image passes (`MetaLearner.episode_work`), so that one visitor's click
# holds a core for a few minutes at most on a small server, however many models and episodes they ask for; an
# image pass's cost per model is measured by bench/compare_defaults.py and bench/README.md.
MAX_WORK_PER_CLICK = 100_000

# The compare page's first settings, chosen so that each click with the three default models ends within half a
# minute on a busy 2-core server (bench/compare_defaults.py times them). The curves are the dear part (MAML's card
# adapts with 30 inner steps from 3 shots on), so they start at few episodes per point and say so.
BENCHMARK_EPISODES = 100
CURVE_EPISODES = 10
CURVE_STEPS = 5

# Fewer episodes than this and a figure is called rough beside it. Its 95% interval is 1.96 standard deviations
# of the episodes over the square root of their number, and both the deviation and the normal shape behind 1.96
# are guesses from those same episodes: a model that fails one episode in 20 scores every one of 10 episodes
# perfectly, "± 0", 60% of the time (0.95 ** 10), and every one of 100 episodes only 0.6% of the time.
FEW_EPISODES = 100
# How many episodes each model card's figures come from (`playground evaluate`'s default).
CARD_EPISODES = 600


class Stopped(Exception):
    """Raised by a benchmark whose ``should_stop`` turned true (its visitor left): nothing to report."""


def episode_work(
    learner: MetaLearner,
    n_way: int,
    k_shot: int,
    settings: Mapping[str, float] | None = None,
    n_query: int = BENCHMARK_QUERIES,
) -> int:
    """Image passes of one episode for ``learner`` adapting with ``settings`` (`MetaLearner.episode_work`)."""
    steps = (settings or {}).get("n_steps")
    if steps is None:  # as `adapt` will: the card's steps for this task size, else the learner's own
        steps = learner.settings_for(n_way, k_shot).get("n_steps")
    return learner.episode_work(n_way, k_shot, n_query, None if steps is None else int(steps))


@dataclass(frozen=True)
class WorkEstimate:
    """What one click would compute, in image passes, against the cap on one click."""

    passes: int
    per_episode: int  # image passes of one episode of every model (and every point of a curve)
    episodes: int
    per_model: tuple[tuple[str, int], ...] = ()  # each model's image passes per episode, costliest first
    cap: int = MAX_WORK_PER_CLICK
    seconds: float | None = None  # at each model's measured pace on this server; None while one is unmeasured

    @property
    def fits(self) -> bool:
        return self.passes <= self.cap

    def most_episodes(self, step: int = 10) -> int:
        """The most episodes (a multiple of ``step``) that fit under the cap with the rest unchanged; 0 if none."""
        return self.cap // max(self.per_episode, 1) // step * step

    def summary(self) -> str:
        """E.g. ``about 10 s on this server (about 19,000 image passes, of the 100,000 one click may start)``;
        only the work while a model's pace is unmeasured."""
        work = f"about {self.passes:,} image passes, of the {self.cap:,} one click may start"
        return work if self.seconds is None else f"{about(self.seconds)} on this server ({work})"

    def refusal(self, episodes: str = "episodes") -> str:
        """Why the click is refused and what to lower (``episodes``: what the episodes control is called);
        empty when it fits."""
        if self.fits:
            return ""
        costly = ", ".join(name for name, _ in self.per_model[:3])
        models = f"fewer models (the costliest here: {costly})" if len(self.per_model) > 1 else "another model"
        most = self.most_episodes()
        lower = (
            f"Lower the {episodes} to {most} or fewer, or choose {models}, fewer classes or fewer shots."
            if most
            else f"Choose {models}, fewer classes or fewer shots."
        )
        took = f"{self.passes:,} image passes"
        if self.seconds is not None:
            took = f"{about(self.seconds)} on this server ({took})"
        return f"This would take {took}, more than the {self.cap:,} one click may start. {lower}"


def _estimate(per_model: dict[str, int], episodes: int, cap: int, models: Mapping[str, MetaLearner]) -> WorkEstimate:
    per = sum(per_model.values())
    costliest = tuple(sorted(per_model.items(), key=lambda item: -item[1]))
    paces = {name: seconds_per_pass(models[name]) for name in per_model}
    seconds = None
    if all(pace is not None for pace in paces.values()):
        seconds = episodes * sum(passes * paces[name] for name, passes in per_model.items())
    return WorkEstimate(per * episodes, per, episodes, costliest, cap, seconds)


def benchmark_work(
    models: Mapping[str, MetaLearner],
    n_way: int,
    k_shot: int,
    episodes: int,
    settings: Mapping[str, Mapping[str, float]] | None = None,
    cap: int = MAX_WORK_PER_CLICK,
) -> WorkEstimate:
    """The work of `compare_on_benchmark` with these arguments, estimated before running it."""
    per = {name: episode_work(m, n_way, k_shot, (settings or {}).get(name)) for name, m in models.items()}
    return _estimate(per, episodes, cap, models)


def curves_work(
    models: Mapping[str, MetaLearner],
    n_way: int,
    k_shot: int,
    episodes: int,
    max_steps: int,
    shots: Sequence[int] = (1, 2, 3, 4, 5),
    settings: Callable[[str, int], Mapping[str, float]] | None = None,
    cap: int = MAX_WORK_PER_CLICK,
) -> WorkEstimate:
    """The work of a `shot_curve` over ``shots`` for every model and a `step_curve` over 0..``max_steps``
    (at most each model's own highest) at ``k_shot`` for every model with inner steps, ``episodes`` per point.

    ``settings(name, shots)`` gives a model's test-time settings at that many shots (its own if None).
    """
    per = {}
    for name, learner in models.items():
        per[name] = sum(episode_work(learner, n_way, k, settings(name, k) if settings else None) for k in shots)
        high = steps_option(learner)
        if high is not None:
            steps = range(min(max_steps, high) + 1)
            per[name] += sum(episode_work(learner, n_way, k_shot, {"n_steps": s}) for s in steps)
    return _estimate(per, episodes, cap, models)


def benchmark_threads() -> int:
    """Torch threads a benchmark computes with: one core fewer than this process may use, so the
    predictions of other visitors keep a core of their own (at least one thread)."""
    return max(1, usable_cpus() - 1)


class OneAtATime:
    """A process-wide turn: one holder at a time; the others wait, or give up when told to stop."""

    def __init__(self, poll_s: float = 0.25):
        self._lock = threading.Lock()
        self._poll_s = poll_s  # how often a waiter asks ``should_stop`` whether its visitor is still there

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @contextmanager
    def turn(self, should_stop: StopCheck | None = None, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the turn for the ``with`` block. ``on_wait()`` is called once if someone else holds it;
        `Stopped` is raised if ``should_stop()`` turns true while waiting."""
        if not self._lock.acquire(blocking=False):
            if on_wait is not None:
                on_wait()
            while not self._lock.acquire(timeout=self._poll_s):
                if should_stop is not None and should_stop():
                    raise Stopped("gave up waiting for a turn")
        try:
            yield
        finally:
            self._lock.release()


# Every session of the app shares the process: two visitors' benchmarks side by side would take every
# core from a third visitor's predictions.
BENCHMARK_TURN = OneAtATime()


@contextmanager
def bounded_threads(threads: int) -> Iterator[None]:
    """Torch computes with ``threads`` threads in the ``with`` block, then with as many as before.

    Torch's count is per thread for threads already running (other sessions keep theirs) and the
    default of threads started meanwhile, which then also compute with ``threads``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def benchmark_turn(
    should_stop: StopCheck | None = None,
    on_wait: Callable[[], None] | None = None,
    turn: OneAtATime = BENCHMARK_TURN,
) -> Iterator[None]:
    """The process's one benchmark turn (`OneAtATime.turn`), computing with `benchmark_threads`."""
    with turn.turn(should_stop, on_wait), bounded_threads(benchmark_threads()):
        yield


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_episode(learner: MetaLearner, n_way: int = 5, k_shot: int = 1, n_query: int = BENCHMARK_QUERIES) -> float:
    """Seconds ``learner`` takes to score one benchmark-shaped episode here, recorded as its pace
    (`playground.evaluation.pace`), so that the first estimate of a click can be given in seconds.

    Computed as a benchmark computes (`benchmark_threads`, the settings its card gives this task size),
    on noise images: the work of an episode does not depend on what the images show. The episode is
    scored twice and the second timed, as the first pays one-off costs (a new thread count's pool).
    """
    settings = learner.settings_for(n_way, k_shot)
    device = torch.device(learner.device)
    support_y = torch.arange(n_way, device=device).repeat_interleave(k_shot)[None]
    query_y = torch.arange(n_way, device=device).repeat_interleave(n_query)[None]
    batch = TaskBatch(
        torch.rand(1, n_way * k_shot, *learner.image_shape, device=device),
        support_y,
        torch.rand(1, n_way * n_query, *learner.image_shape, device=device),
        query_y,
    )
    steps, lr = settings.get("n_steps"), settings.get("inner_lr")
    with bounded_threads(benchmark_threads()):
        learner.episode_accuracies(batch, n_steps=None if steps is None else int(steps), inner_lr=lr)
        _sync(device)
        t0 = time.perf_counter()
        learner.episode_accuracies(batch, n_steps=None if steps is None else int(steps), inner_lr=lr)
        _sync(device)
        seconds = time.perf_counter() - t0
    record(learner, episode_work(learner, n_way, k_shot, settings, n_query), seconds)
    return seconds


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
            note = r.error or r.warning or ""
            scores.append(TaskScore(name, r.accuracy, r.adapt_ms, r.predict_ms, f"{labelled} queries", note))
        else:
            loo = leave_one_out(learner, support_x, support_y)
            scores.append(TaskScore(name, loo.accuracy, loo.adapt_ms, None, f"leave-one-out, {len(support_y)} images"))
        if progress is not None:
            progress(i + 1, len(models), name)
    return scores


def benchmark_episodes(
    dataset: ClassDataset,
    n_way: int,
    k_shot: int,
    episodes: int,
    n_query: int = BENCHMARK_QUERIES,
    seed: int = 0,
    batch: int = 25,
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
    should_stop: StopCheck | None = None,
) -> EvalResult:
    """Query accuracy of each episode, in the order given (``n_steps`` of ``inner_lr``: the learner's own if None).

    With ``should_stop``, episodes are scored one at a time and `Stopped` is raised before the first
    one for which it is true (one episode of a slow model at 20-way 5-shot takes seconds; a batch, minutes).
    """
    accs: list[float] = []
    total = sum(len(b) for b in batches)
    t0 = time.perf_counter()
    for b in batches:
        parts = [b] if should_stop is None else [b.split(len(b), i) for i in range(len(b))]
        for part in parts:
            if should_stop is not None and should_stop():
                raise Stopped(f"stopped after {len(accs)} of {total} episodes")
            accs += learner.episode_accuracies(part.to(learner.device), n_steps=n_steps, inner_lr=inner_lr).tolist()
            if progress is not None:
                progress(len(accs), total)
    _sync(torch.device(learner.device))
    seconds = time.perf_counter() - t0
    n_way = int(batches[0].support_y.max()) + 1
    k_shot = batches[0].support_y.shape[1] // n_way
    n_query = batches[0].query_y.shape[1] // n_way
    # the next click's estimate in seconds follows what this run took (`playground.evaluation.pace`)
    steps = None if n_steps is None else {"n_steps": n_steps}
    record(learner, total * episode_work(learner, n_way, k_shot, steps, n_query), seconds)
    return EvalResult(accs, n_way, k_shot, n_query)


def compare_on_benchmark(
    models: Mapping[str, MetaLearner],
    dataset: ClassDataset,
    n_way: int,
    k_shot: int,
    episodes: int = 100,
    seed: int = 0,
    settings: Mapping[str, Mapping[str, float]] | None = None,
    progress: Progress | None = None,
    should_stop: StopCheck | None = None,
    max_work: int | None = None,
) -> list[BenchmarkRow]:
    """Every model on the same seeded episodes: mean accuracy with its 95% CI, and the time it took.

    ``settings`` may set a gradient-based model's test-time ``n_steps`` and ``inner_lr`` by name (each checked
    against its range; e.g. those its card was measured with, `ModelEntry.adapt_defaults`).
    ``progress(done, total)`` counts episodes over all models. With ``max_work`` (image passes, e.g.
    `MAX_WORK_PER_CLICK`) a benchmark estimated above it is refused with a ValueError saying what to lower;
    ``should_stop`` is checked before every episode (`score_on_episodes`).
    """
    if max_work is not None:
        estimate = benchmark_work(models, n_way, k_shot, episodes, settings, cap=max_work)
        if not estimate.fits:
            raise ValueError(estimate.refusal())
    batches = benchmark_episodes(dataset, n_way, k_shot, episodes, seed=seed)
    rows, done, total = [], 0, episodes * len(models)
    for name, learner in models.items():
        kwargs = adapt_kwargs(learner, (settings or {}).get(name, {}))

        def tick(k: int, _: int, base: int = done) -> None:
            if progress is not None:
                progress(base + k, total)

        t0 = time.perf_counter()
        result = score_on_episodes(
            learner, batches, kwargs.get("n_steps"), tick, inner_lr=kwargs.get("inner_lr"), should_stop=should_stop
        )
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
    should_stop: StopCheck | None = None,
    settings: Callable[[int], Mapping[str, float]] | None = None,
) -> list[EvalResult]:
    """Accuracy at each number of shots (the same seed at each, so every model meets the same classes).

    ``settings(k)`` gives the test-time settings at k shots (e.g. the card's, `ModelEntry.adapt_defaults`);
    the learner's own when None.
    """
    results = []
    for k in shots:
        kwargs = adapt_kwargs(learner, settings(k) if settings is not None else {})
        batches = benchmark_episodes(dataset, n_way, k, episodes, seed=seed)
        results.append(
            score_on_episodes(learner, batches, kwargs.get("n_steps"), None, kwargs.get("inner_lr"), should_stop)
        )
    return results


def step_curve(
    learner: MetaLearner,
    dataset: ClassDataset,
    n_way: int,
    k_shot: int,
    steps: Sequence[int],
    episodes: int = 100,
    seed: int = 0,
    should_stop: StopCheck | None = None,
) -> list[EvalResult]:
    """Accuracy after each number of inner steps (gradient-based learners), on the same episodes."""
    high = steps_option(learner)
    if high is None:
        raise ValueError(f"{learner.name} has no inner loop: accuracy does not depend on inner steps")
    bad = [s for s in steps if not 0 <= s <= high]
    if bad:
        raise ValueError(f"inner steps must be between 0 and {high} (got {bad})")
    batches = benchmark_episodes(dataset, n_way, k_shot, episodes, seed=seed)
    return [score_on_episodes(learner, batches, n_steps=s, should_stop=should_stop) for s in steps]


def accuracy_text(result: EvalResult) -> str:
    """``98.4 ± 0.7 %``; where every episode scored the same, ``100.0 %, the same in all 10 episodes``: the
    interval of such episodes is 0, which would read as an exact figure."""
    if result.episodes > 1 and result.ci95 == 0:
        return f"{100 * result.mean:.1f} %, the same in all {result.episodes} episodes"
    return result.format()


def few_episodes_note(
    results: Mapping[str, Sequence[EvalResult]], control: str, per: str = "model", most: int | None = None
) -> str:
    """What a newcomer should know before trusting these figures, in plain words (no markdown), a paragraph
    for each thing to know, separated by a blank line; "" if nothing.

    ``results[model]``: its figures (one for a benchmark, one per point of a curve); ``control``: what the
    page's episodes control is called; ``per``: what each figure is ("model", "point"); ``most``: the most
    episodes one click may start with the other settings unchanged (`WorkEstimate.most_episodes`), if known.
    Says so when the fewest episodes behind a figure are under `FEW_EPISODES`, and names the models with a
    figure whose every episode scored the same (no spread to measure, which does not make it exact).
    """
    figures = [r for rs in results.values() for r in rs]
    if not figures:
        return ""
    notes = []
    fewest = min(r.episodes for r in figures)
    if fewest < FEW_EPISODES:
        if most is None or most >= FEW_EPISODES:
            more = f"Raise {control} to {FEW_EPISODES} or more for firmer figures (it takes longer)."
        elif most > fewest:
            more = f"Raise {control} (here to {most} at most, the most one click may start) for firmer figures."
        else:
            more = f"Fewer models, classes or shots would let one click score more {control.lower()}."
        notes.append(
            f"A rough first look: only {fewest} episodes per {per}. The ± is a 95% confidence interval, and from "
            f"this few episodes it is itself a rough guess: do not rank models whose ranges overlap. The model "
            f"cards use {CARD_EPISODES} episodes. {more}"
        )
    alike = [name for name, rs in results.items() if any(r.episodes > 1 and r.ci95 == 0 for r in rs)]
    if alike:
        who = ", ".join(alike[:-1]) + (" and " if len(alike) > 1 else "") + alike[-1]
        if per == "model":
            notes.append(
                f"{who} scored the same in every episode, so these episodes show no spread to measure and no ± is "
                "shown. That does not mean the figure is exact."
            )
        else:
            notes.append(
                f"{who} scored the same in every episode at some {per}s, so those {per}s show no spread to measure "
                "and have no whisker. That does not mean they are exact."
            )
    return "\n\n".join(notes)


def few_queries_note(scored: int) -> str:
    """What one query is worth when a model is scored on ``scored`` queries of one task; "" for none."""
    if scored <= 0:
        return ""
    return (
        f"With {scored} image{'s' if scored != 1 else ''} of one task, each one right or wrong moves a model's "
        f"accuracy by {100 / scored:.0f} points: a tie or a gap here says little. The benchmark below scores every "
        "model on many tasks."
    )

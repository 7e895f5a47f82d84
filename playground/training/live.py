"""Meta-training live: a training job with a budget in seconds, run in a subprocess, reporting its progress
and snapshots; and the process-wide scheduler that runs one job at a time and queues the others.

A job runs `playground.training.train` (the CLI's loop) in a ``spawn``ed process with its own torch thread
count: one CPU stays free for the other visitors, cancelling is an event the loop checks each iteration (and,
failing that, ending the process), and the server's interpreter never holds the training's memory or GIL.

Every few seconds the job measures its model on one fixed probe (`Probe`): 5-way 1-shot accuracy on seeded
episodes of the evaluation alphabets, the embeddings of a few unseen characters, and, for learners with an
inner loop, the support loss after each inner step at the current initialisation. The same measures are
taken once for the random initialisation (the run's own first weights) and for the shipped model.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import multiprocessing
import os
import queue
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from playground.algorithms import MetaLearner, available, create_learner, learner_class
from playground.data.episodes import TaskBatch, TaskSampler
from playground.data.protocols import ClassDataset
from playground.evaluation.few_shot import confidence_interval_95

BUDGETS = (20, 60, 120)  # seconds a person may choose
WAYS = (2, 20)  # the training task shape's allowed range, inclusive
SHOTS = (1, 5)
INNER_STEPS = (1, 10)
PROTOCOL = "lake"
QUERY = 5  # query images per class in a training episode (as the shipped models were trained)
DEFAULT_META_BATCH = 4  # tasks per outer step where the shipped model's card does not say
PROBE_EPISODES = 40  # fixed 5-way 1-shot evaluation episodes: about 0.1 s for ProtoNet, under a second for MAML
PROBE_QUERY = 5
PROBE_SEED = 2024
PROBE_CHARACTERS = 6  # unseen characters whose embeddings are drawn
PROBE_DRAWINGS = 10
STEP_CURVE_STEPS = 10  # inner steps drawn in the support-loss curve
STEP_CURVE_EPISODES = 8
SNAPSHOT_EVERY = 3.0  # seconds of training between snapshots
PROGRESS_EVERY = 0.25  # seconds between progress reports
MAX_PROGRESS = 480  # progress points kept; beyond, every other one is dropped
MAX_SNAPSHOTS = 48  # snapshots kept (a 120 s run takes 41); beyond, every other one is dropped
ABANDON_AFTER = 20.0  # seconds without a poll after which a job's session is taken as gone
FINISH_GRACE = 60.0  # seconds past the budget before a job that has not ended is ended by force
START_TIMEOUT = 120.0  # seconds a job may take to start training
STARTUP_GUESS = 8.0  # seconds from start to the first iteration, until one has been seen


@dataclass(frozen=True)
class LiveSettings:
    """What a person chooses: the algorithm, the training task shape, the inner steps and the budget."""

    algorithm: str = "protonet"
    ways: int = 5
    shots: int = 1
    inner_steps: int | None = None  # learners with an inner loop only; None: the shipped model's
    budget: float = 60.0  # seconds of training
    seed: int = 0

    def check(self) -> LiveSettings:
        """These settings, or a ValueError naming what is wrong and what is allowed."""
        if self.algorithm not in live_algorithms():
            raise ValueError(f"{self.algorithm!r} cannot be trained live; choose one of {', '.join(live_algorithms())}")
        for what, value, (low, high) in (("ways", self.ways, WAYS), ("shots", self.shots, SHOTS)):
            if not low <= value <= high:
                raise ValueError(f"{what} must be between {low} and {high} (got {value})")
        if self.inner_steps is not None:
            if not has_inner_loop(self.algorithm):
                raise ValueError(f"{learner_class(self.algorithm).title} has no inner steps to set")
            if not INNER_STEPS[0] <= self.inner_steps <= INNER_STEPS[1]:
                raise ValueError(f"inner steps must be between {INNER_STEPS[0]} and {INNER_STEPS[1]}")
        if not 0 < self.budget <= max(BUDGETS):
            raise ValueError(f"the budget must be more than 0 and at most {max(BUDGETS)} seconds (got {self.budget:g})")
        return self

    @property
    def label(self) -> str:
        """The name a person sees for the model this run makes: "Your ProtoNet (60 s)"."""
        return f"Your {learner_class(self.algorithm).title} ({self.budget:g} s)"


def live_algorithms() -> list[str]:
    """The registered algorithms that declare they can be trained live (`MetaLearner.trains_live`)."""
    return [a for a in available() if learner_class(a).trains_live and not learner_class(a).not_trainable]


def has_inner_loop(algorithm: str) -> bool:
    """Whether the algorithm adapts by inner gradient steps (it takes an ``inner_steps`` hyperparameter)."""
    return "inner_steps" in learner_class(algorithm).hyperparameters()


def shipped_recipe(algorithm: str) -> tuple[dict[str, Any], int]:
    """The shipped model's hyperparameters and meta-batch, so that a live run trains as it was trained."""
    from playground.zoo.card import ModelCard
    from playground.zoo.checkpoints import read_card
    from playground.zoo.shipped import CHECKPOINT_DIR

    card = read_card(CHECKPOINT_DIR / f"{algorithm}_{PROTOCOL}.pt") or ModelCard()
    accepted = learner_class(algorithm).hyperparameters()
    options = {k: v for k, v in card.config.items() if k in accepted and k != "n_way"}
    meta_batch = (card.training.train_config or {}).get("meta_batch", DEFAULT_META_BATCH)
    return options, int(meta_batch)


def training_config(settings: LiveSettings, out: str, data_dir: str | None = None):
    """The `TrainConfig` of a live run: the shipped recipe, the person's task shape, no validation or saves."""
    from playground.training import TrainConfig

    options, meta_batch = shipped_recipe(settings.algorithm)
    if has_inner_loop(settings.algorithm) and settings.inner_steps is not None:
        options["inner_steps"] = settings.inner_steps
        options["test_inner_steps"] = max(settings.inner_steps, int(options.get("test_inner_steps", 0)))
    return TrainConfig(
        algorithm=settings.algorithm,
        protocol=PROTOCOL,
        ways=settings.ways,
        shots=settings.shots,
        query=QUERY,
        meta_batch=meta_batch,
        iterations=10**9,  # the budget ends it; so large an horizon keeps the cosine schedule at its start
        val_every=10**9,
        save_every=0,
        seed=settings.seed,
        device="cpu",
        out=out,
        data_dir=data_dir,
        learner=options,
    )


# -- what a snapshot measures ----------------------------------------------------------------------------------
@dataclass
class Measure:
    """A model on the probe: accuracy on its fixed episodes, its characters' embeddings, its inner-step losses."""

    accuracy: float
    ci95: float
    embedding: np.ndarray | None  # [characters * drawings, d], or None for a learner without an embedding
    step_losses: list[float] | None  # mean support loss after 0..STEP_CURVE_STEPS inner steps; None without


@dataclass
class Snapshot:
    iteration: int
    seconds: float
    measure: Measure


@dataclass
class Progress:
    iteration: int
    seconds: float
    loss: float  # smoothed meta-training loss
    accuracy: float  # smoothed meta-training query accuracy


class Probe:
    """Fixed 5-way 1-shot episodes and a few fixed characters of the evaluation alphabets (seeded)."""

    def __init__(self, evaluation: ClassDataset, seed: int = PROBE_SEED):
        self.episodes: TaskBatch = TaskSampler(evaluation, 5, 1, PROBE_QUERY, seed=seed).sample_batch(PROBE_EPISODES)
        chosen = torch.randperm(evaluation.num_classes, generator=torch.Generator().manual_seed(seed + 1))
        chosen = chosen[:PROBE_CHARACTERS]
        images = evaluation.images[chosen, :PROBE_DRAWINGS]  # [C, D, 28, 28] uint8
        self.characters = images.reshape(-1, 1, 28, 28).float() / 255.0
        self.labels = torch.arange(PROBE_CHARACTERS).repeat_interleave(PROBE_DRAWINGS)
        self.names = [evaluation.names[int(c)] for c in chosen]

    def measure(self, learner: MetaLearner) -> Measure:
        """The learner's accuracy, embeddings and inner-step losses on the probe (learner left in eval mode)."""
        learner.eval()
        accs = learner.episode_accuracies(self.episodes).tolist()
        # Each character's first drawing is its support: the embedding the learner would decide in.
        first = torch.arange(0, len(self.labels), PROBE_DRAWINGS)
        predictor = learner.adapt(self.characters[first], self.labels[first])
        with torch.no_grad():
            embedded = predictor.embed(self.characters)
        embedding = None if embedded is None else embedded.detach().flatten(1).cpu().numpy().astype(np.float32)
        steps = None
        if learner.adapts_with("n_steps"):
            traces = [
                learner.adapt(t.support_x, t.support_y, n_steps=STEP_CURVE_STEPS).trace
                for t in (self.episodes[i] for i in range(STEP_CURVE_EPISODES))
            ]
            steps = [float(np.mean([trace[k].loss for trace in traces])) for k in range(STEP_CURVE_STEPS + 1)]
        return Measure(float(np.mean(accs)), confidence_interval_95(accs), embedding, steps)


def project(embeddings: list[np.ndarray]) -> list[np.ndarray]:
    """Each embedding [n, d] in 2-D with one projection: the PCA of the last one (the latest model's).

    One projection keeps a point's movement between snapshots meaningful; fitted on the latest model, whose
    classes are the most apart, it shows the directions meta-training made, and earlier snapshots in them.
    """
    if not embeddings:
        return []
    last = embeddings[-1]
    mean = last.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(last - mean, full_matrices=False)
    axes = vt[:2].T
    if axes.shape[1] < 2:
        axes = np.pad(axes, ((0, 0), (0, 2 - axes.shape[1])))
    signs = np.sign(((last - mean) @ axes).sum(0))  # fixed per fit, so the same model gives the same picture
    axes = axes * np.where(signs == 0, 1, signs)
    return [(e - mean) @ axes for e in embeddings]


# -- the job's own process --------------------------------------------------------------------------------------
class _Stop(Exception):
    """Raised from the iteration callback: the budget is spent or the job was cancelled."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _state_bytes(learner: MetaLearner) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in learner.state_dict().items()}, buffer)
    return buffer.getvalue()


# The other visitors' predictions come first: when the server and a training job both want a core, the
# kernel gives it to the server (nice 10 gets about a tenth of the CPU a nice 0 process gets beside it).
TRAINING_NICENESS = 10


def _yield_to_visitors() -> None:
    try:
        os.nice(TRAINING_NICENESS)
    except (AttributeError, OSError):  # no nice on Windows; a raise beyond the limit is refused elsewhere
        pass


def run_training(settings: LiveSettings, report: Any, cancel: Any, threads: int | None = None) -> None:
    """Train for ``settings.budget`` seconds (or until ``cancel`` is set), putting on ``report`` (a queue)
    tuples: ("reference", name, Measure), ("started",), ("progress", Progress), ("snapshot", Snapshot, weights,
    config), then ("done", reason, weights, config) or ("error", message). A snapshot carries the weights it
    measured, so a run ended by force still leaves its latest model. The target of a job's process."""
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        _yield_to_visitors()
        _train_and_report(settings, report, cancel)
    except Exception as exc:  # the parent shows the message; the traceback goes to the server's log
        traceback.print_exc()
        report.put(("error", f"{type(exc).__name__}: {exc}"))


def _train_and_report(settings: LiveSettings, report: Any, cancel: Any) -> None:
    from playground.data.protocols import load_splits
    from playground.training import train
    from playground.zoo.checkpoints import load_learner
    from playground.zoo.shipped import CHECKPOINT_DIR

    probe = Probe(load_splits(PROTOCOL, rotations=False).test)
    report.put(("characters", probe.names))
    with tempfile.TemporaryDirectory(prefix="live-train-") as out:
        cfg = training_config(settings, out)
        # The same seed and options as `train` uses: these are the run's own first weights.
        torch.manual_seed(cfg.seed)
        initial = create_learner(cfg.algorithm, **{**cfg.learner, "n_way": cfg.ways})
        random_init = probe.measure(initial)
        report.put(("reference", "random", random_init))
        shipped = CHECKPOINT_DIR / f"{settings.algorithm}_{PROTOCOL}.pt"
        if shipped.exists():
            report.put(("reference", "shipped", probe.measure(load_learner(shipped, "cpu"))))
        del initial
        clock: dict[str, float] = {}

        def started() -> None:
            clock["start"] = clock["progress"] = clock["snapshot"] = time.perf_counter()
            report.put(("started",))
            report.put(("snapshot", Snapshot(0, 0.0, random_init), None, None))

        def each(learner: MetaLearner, iteration: int, loss: float, accuracy: float) -> None:
            now = time.perf_counter()
            seconds = now - clock["start"]
            clock["learner"], clock["iteration"], clock["loss"], clock["accuracy"] = learner, iteration, loss, accuracy
            if now - clock["progress"] >= PROGRESS_EVERY:
                clock["progress"] = now
                report.put(("progress", Progress(iteration, seconds, loss, accuracy)))
            if cancel.is_set():
                raise _Stop("stopped")
            if seconds >= settings.budget:
                raise _Stop("budget")
            if now - clock["snapshot"] >= SNAPSHOT_EVERY:
                measure = probe.measure(learner)
                report.put(("snapshot", Snapshot(iteration, seconds, measure), _state_bytes(learner), learner.config()))
                clock["snapshot"] = time.perf_counter()  # measuring is not counted as time between snapshots

        try:
            # The loop's progress bar is for a terminal; the page draws the progress here.
            with contextlib.redirect_stderr(io.StringIO()):
                train(cfg, echo=lambda *a, **k: None, on_start=started, on_iteration=each)
            reason = "budget"
        except _Stop as stop:
            reason = stop.reason
        learner: MetaLearner | None = clock.get("learner")
        if learner is None:  # stopped before the first iteration ended
            report.put(("done", reason, None, None))
            return
        seconds = time.perf_counter() - clock["start"]
        report.put(("progress", Progress(clock["iteration"], seconds, clock["loss"], clock["accuracy"])))
        weights, config = _state_bytes(learner), learner.config()
        report.put(("snapshot", Snapshot(clock["iteration"], seconds, probe.measure(learner)), weights, config))
        report.put(("done", reason, weights, config))


# -- the server's side ------------------------------------------------------------------------------------------
QUEUED, STARTING, RUNNING, DONE, STOPPED, CANCELLED, FAILED = (
    "queued",
    "starting",
    "running",
    "done",
    "stopped",
    "cancelled",
    "failed",
)
FINISHED = (DONE, STOPPED, CANCELLED, FAILED)


@dataclass
class JobView:
    """What a page draws: a copy of a job's state at one moment."""

    state: str
    settings: LiveSettings
    position: int  # 0 while starting or running; 1, 2, ... in the queue
    wait: float  # seconds until it should start (0 once it has)
    time_left: float  # seconds of its budget left
    progress: list[Progress]
    snapshots: list[Snapshot]
    references: dict[str, Measure]
    message: str = ""
    iterations: int = 0
    characters: list[str] = field(default_factory=list)  # the probe's unseen characters, in embedding order
    has_model: bool = False  # a snapshot's (or the final) weights are there: `TrainingJob.learner` gives them

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass
class TrainingJob:
    """One person's run, as the scheduler keeps it. Read it through `view`; stop it with `cancel`."""

    settings: LiveSettings
    scheduler: TrainingScheduler
    id: int = 0
    state: str = QUEUED
    message: str = ""
    progress: list[Progress] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    references: dict[str, Measure] = field(default_factory=dict)
    characters: list[str] = field(default_factory=list)
    last_seen: float = field(default_factory=time.monotonic)
    alive: Callable[[], bool] | None = None
    launched_at: float | None = None  # the process started
    started_at: float | None = None  # the first iteration began
    ended_at: float | None = None
    weights: bytes | None = None  # the latest snapshot's (a Conv-4's state_dict), then the final model's
    config: dict[str, Any] | None = None
    _cancel: Any = None
    _process: Any = None
    _report: Any = None
    _kill_at: float | None = None

    def view(self) -> JobView:
        """The job's state now; polling is what tells the scheduler that its session is still there."""
        return self.scheduler.view(self)

    def cancel(self) -> None:
        """Leave the queue, or stop training after the iteration in progress (the model so far is kept)."""
        self.scheduler.cancel(self)

    def learner(self) -> MetaLearner | None:
        """The model as of its latest snapshot, or the final one once the job has ended (None before any)."""
        if self.weights is None or self.config is None:
            return None
        learner = create_learner(self.settings.algorithm, **self.config)
        learner.load_state_dict(torch.load(io.BytesIO(self.weights), weights_only=True))
        return learner.eval()


def _thin(items: list, limit: int) -> None:
    """Drop every other item but the first and the last once there are more than ``limit``: bounded memory, the
    whole run still drawn."""
    if len(items) > limit:
        items[:] = items[:-1:2] + items[-1:]


def default_threads() -> int:
    """Torch threads for a job: one less than the usable CPUs, so that a CPU stays free for other visitors."""
    from playground.runtime.threads import usable_cpus

    return max(1, usable_cpus() - 1)


class TrainingScheduler:
    """At most one job runs at a time; others wait in a FIFO queue. A monitor thread reads the running job's
    reports, starts the next job, ends a job at its budget and drops a job whose session stopped polling."""

    def __init__(self, threads: int | None = None, abandon_after: float = ABANDON_AFTER, tick: float = 0.1):
        self.threads = threads or default_threads()
        self.abandon_after = abandon_after
        self.tick = tick
        self.startup = STARTUP_GUESS  # the last seen time from launch to the first iteration
        self._lock = threading.RLock()
        self._queue: deque[TrainingJob] = deque()
        self._running: TrainingJob | None = None
        self._ids = itertools.count(1)
        self._context = multiprocessing.get_context("spawn")
        self._thread: threading.Thread | None = None

    # -- what pages call -------------------------------------------------------------------------------------
    def submit(self, settings: LiveSettings, alive: Callable[[], bool] | None = None) -> TrainingJob:
        """Queue a job (it starts at once when none runs). ``alive`` says whether its session is still there
        (the browser connected); besides polls, it keeps the job when its person is on another page."""
        job = TrainingJob(settings.check(), self, id=next(self._ids), alive=alive)
        with self._lock:
            self._queue.append(job)
            self._step()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._monitor, name="live-training", daemon=True)
                self._thread.start()
        return job

    def view(self, job: TrainingJob) -> JobView:
        with self._lock:
            job.last_seen = time.monotonic()
            position, wait = self._place(job)
            elapsed = 0.0 if job.started_at is None else (job.ended_at or time.monotonic()) - job.started_at
            return JobView(
                state=job.state,
                settings=job.settings,
                position=position,
                wait=wait,
                time_left=0.0 if job.state in FINISHED else max(0.0, job.settings.budget - elapsed),
                progress=list(job.progress),
                snapshots=list(job.snapshots),
                references=dict(job.references),
                message=job.message,
                iterations=job.progress[-1].iteration if job.progress else 0,
                characters=list(job.characters),
                has_model=job.weights is not None,
            )

    def cancel(self, job: TrainingJob) -> None:
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
                self._end(job, CANCELLED, "cancelled before it started")
            elif job is self._running and job.state == STARTING:
                # Nothing is learned before the first iteration: end the process now rather than after its set-up.
                self._kill(job, CANCELLED, job.message or "stopped before training began")
            elif job is self._running and job._cancel is not None:
                job._cancel.set()
                job._kill_at = min(job._kill_at or math.inf, time.monotonic() + FINISH_GRACE)

    def busy(self) -> bool:
        """Whether a job runs or waits."""
        with self._lock:
            return self._running is not None or bool(self._queue)

    def shutdown(self) -> None:
        """End every job now (for tests and the server's exit)."""
        with self._lock:
            for job in list(self._queue):
                self.cancel(job)
            if self._running is not None:
                self._kill(self._running, STOPPED, "the server stopped it")

    # -- the monitor -----------------------------------------------------------------------------------------
    def _place(self, job: TrainingJob) -> tuple[int, float]:
        if job not in self._queue:
            return 0, 0.0
        ahead = 0.0
        running = self._running
        if running is not None:
            left = running.settings.budget
            if running.started_at is not None:
                left -= time.monotonic() - running.started_at
            else:
                left += self.startup
            ahead += max(0.0, left)
        position = 0
        for other in self._queue:
            position += 1
            if other is job:
                break
            ahead += other.settings.budget + self.startup
        return position, ahead + (self.startup if running is not None or position > 1 else 0.0)

    def _monitor(self) -> None:
        while True:
            with self._lock:
                self._step()
                if self._running is None and not self._queue:
                    self._thread = None
                    return
            time.sleep(self.tick)

    def _step(self) -> None:
        now = time.monotonic()
        for job in [*self._queue, *([self._running] if self._running else [])]:
            if job.alive is not None and job.alive():
                job.last_seen = now
        for job in list(self._queue):
            if now - job.last_seen > self.abandon_after:
                self._queue.remove(job)
                self._end(job, CANCELLED, "its page stopped asking: the session is gone")
        job = self._running
        if job is not None:
            self._drain(job)
            if job.state not in FINISHED:
                if now - job.last_seen > self.abandon_after and not job._cancel.is_set():
                    job.message = "its page stopped asking: the session is gone"
                    self.cancel(job)
                if job.started_at is None and now - (job.launched_at or now) > START_TIMEOUT:
                    self._kill(job, FAILED, f"training did not start within {START_TIMEOUT:g} s")
                elif job.started_at is not None and now - job.started_at > job.settings.budget + FINISH_GRACE:
                    job._kill_at = min(job._kill_at or math.inf, now)
                if job.state not in FINISHED and job._kill_at is not None and now >= job._kill_at:
                    self._kill(job, STOPPED, "ended by force: it did not stop in time")
                elif job.state not in FINISHED and not job._process.is_alive():
                    self._drain(job)
                    if job.state not in FINISHED:
                        code = job._process.exitcode
                        self._end(job, FAILED, f"the training process ended unexpectedly (exit {code})")
            if job.state in FINISHED:
                self._running = None
        if self._running is None and self._queue:
            self._launch(self._queue.popleft())

    def _launch(self, job: TrainingJob) -> None:
        job._report = self._context.Queue()
        job._cancel = self._context.Event()
        job._process = self._context.Process(
            target=run_training, args=(job.settings, job._report, job._cancel, self.threads), daemon=True
        )
        job.state, job.launched_at = STARTING, time.monotonic()
        self._running = job
        job._process.start()

    def _drain(self, job: TrainingJob) -> None:
        while job._report is not None:
            try:
                message = job._report.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            kind = message[0]
            if kind == "characters":
                job.characters = message[1]
            elif kind == "reference":
                job.references[message[1]] = message[2]
            elif kind == "started":
                job.state, job.started_at = RUNNING, time.monotonic()
                self.startup = job.started_at - job.launched_at
            elif kind == "progress":
                job.progress.append(message[1])
                _thin(job.progress, MAX_PROGRESS)
            elif kind == "snapshot":
                job.snapshots.append(message[1])
                _thin(job.snapshots, MAX_SNAPSHOTS)
                if message[2] is not None:  # only the latest weights are kept: memory stays one model's
                    job.weights, job.config = message[2], message[3]
            elif kind == "done":
                _, reason, weights, config = message
                if weights is not None:
                    job.weights, job.config = weights, config
                state = DONE if reason == "budget" else STOPPED
                self._end(job, state, job.message or ("budget spent" if state == DONE else "stopped"))
                job._process.join(timeout=10)
            elif kind == "error":
                self._end(job, FAILED, message[1])

    def _kill(self, job: TrainingJob, state: str, message: str) -> None:
        if job._process is not None and job._process.is_alive():
            job._process.kill()
            job._process.join(timeout=10)
        self._end(job, state, message)
        if self._running is job:
            self._running = None

    def _end(self, job: TrainingJob, state: str, message: str) -> None:
        if job.state in FINISHED:
            return
        job.state, job.message, job.ended_at = state, message, time.monotonic()
        if job._report is not None:
            # Its queue's feeder thread and pipe go with it: a finished job holds only what a page draws.
            job._report.close()
            job._report.join_thread()
            job._report = None


_SCHEDULER: TrainingScheduler | None = None
_SCHEDULER_LOCK = threading.Lock()


def scheduler() -> TrainingScheduler:
    """The process's one scheduler: every session of a server shares it."""
    global _SCHEDULER
    with _SCHEDULER_LOCK:
        if _SCHEDULER is None:
            _SCHEDULER = TrainingScheduler()
        return _SCHEDULER


__all__ = [
    "BUDGETS",
    "JobView",
    "LiveSettings",
    "Measure",
    "Probe",
    "Progress",
    "Snapshot",
    "TrainingJob",
    "TrainingScheduler",
    "live_algorithms",
    "project",
    "scheduler",
]

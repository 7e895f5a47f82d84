"""Adapt a model to a user's task and predict its queries, timed: what the app's predict page shows."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from playground.algorithms import AdaptOption, MetaLearner, StepRecord


@dataclass
class ModelPrediction:
    model: str
    algorithm: str
    proba: np.ndarray  # [n_query, n_way]
    adapt_ms: float
    predict_ms: float
    trace: list[StepRecord] = field(default_factory=list)
    true_labels: list[int | None] = field(default_factory=list)
    error: str | None = None  # set when adaptation failed (e.g. diverged); proba is then empty
    warning: str | None = None  # set when adaptation ran but overshot (`adaptation_warning`); proba is kept

    @property
    def predicted(self) -> list[int]:
        return self.proba.argmax(-1).tolist() if self.proba.size else []

    @property
    def accuracy(self) -> float | None:
        """Accuracy on the queries that carry a true label; None when none does."""
        pairs = [(p, t) for p, t in zip(self.predicted, self.true_labels) if t is not None]
        if not pairs:
            return None
        return sum(p == t for p, t in pairs) / len(pairs)

    @property
    def total_ms(self) -> float:
        return self.adapt_ms + self.predict_ms


# When a rise of the support loss counts as overshooting. Steps of a sane size may rise for a step or two
# before they settle (maml_lake at its card's 30 steps on a 5-way 5-shot task: 1.61 to 1.88 at step 4,
# then 0.01), and learning from scratch with Adam rises a little on its first step; steps too large throw
# the weights far from the meta-learned start (MAML at the top of its ranges: many times the starting loss,
# queries at chance). So: a peak above twice the start, or an end above it (by the margin).
OVERSHOOT_PEAK = 2.0
OVERSHOOT_MARGIN = 0.10


def adaptation_warning(trace: Sequence[StepRecord]) -> str | None:
    """Why this adaptation's support fit cannot be trusted, or None when it settled.

    A finite loss that climbs far above its starting value, or ends above it, means the steps overshot: the weights were
    thrown away from the meta-learned start, and the predictions suffer even where the loss later falls
    back (MAML at 50 steps of rate 4.0 ended a 20-way task at 8% support accuracy, its queries at 4%).
    A trace without steps, or with a NaN (reported as diverged instead), gives None.
    """
    if len(trace) < 2 or not all(np.isfinite(r.loss) for r in trace):
        return None
    start, end = trace[0], trace[-1]
    peak = max(trace, key=lambda r: r.loss)
    scale = max(start.loss, 1.0)  # a start near zero would make any wobble look like a climb
    if peak.loss <= OVERSHOOT_PEAK * scale and end.loss <= start.loss + OVERSHOOT_MARGIN * scale:
        return None
    course = (
        f"the support loss rose from {start.loss:.2f} to {end.loss:.2f}"
        if peak is end
        else f"the support loss rose from {start.loss:.2f} to {peak.loss:.2f} at step {peak.step} "
        f"and ended at {end.loss:.2f}"
    )
    return (
        f"adaptation overshot: {course} (support accuracy {start.accuracy:.0%} before, {end.accuracy:.0%} after), "
        "so its predictions are likely worse than the model can do. Lower the inner learning rate, or take "
        "fewer inner steps."
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def task_adapt_options(learner: MetaLearner, defaults: Mapping[str, float]) -> list[AdaptOption]:
    """``learner``'s test-time options, each named in ``defaults`` starting there (kept in its range)."""
    options = []
    for o in learner.adapt_options():
        if defaults.get(o.name) is not None:
            start = min(max(float(defaults[o.name]), o.low), o.high)
            o = replace(o, default=round(start) if o.integer else start)
        options.append(o)
    return options


def adapt_kwargs(learner: MetaLearner, settings: Mapping[str, float]) -> dict[str, float]:
    """The keywords for ``learner.adapt``: the settings it accepts, each checked against its range."""
    return {o.name: o.check(settings[o.name]) for o in learner.adapt_options() if settings.get(o.name) is not None}


def adapt_and_predict(
    name: str,
    learner: MetaLearner,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    true_labels: list[int | None] | None = None,
    settings: Mapping[str, float] | None = None,
) -> ModelPrediction:
    """Adapt ``learner`` to the support set (functionally) and predict every query, timing both.

    ``settings`` are test-time options (`MetaLearner.adapt_options`, e.g. ``n_steps``); each is
    checked against the learner's allowed range, and those the learner does not have are ignored,
    so one dict can be passed to every model.
    """
    labels = list(true_labels) if true_labels is not None else [None] * len(query_x)
    kwargs = adapt_kwargs(learner, settings or {})
    device = learner.device
    _sync(device)
    t0 = time.perf_counter()
    predictor = learner.adapt(support_x.to(device), support_y.to(device), **kwargs)
    # Inside the adapt time: the page shows the trace, and an ensemble's costs a pass when first asked for.
    trace = list(predictor.trace)
    _sync(device)
    t1 = time.perf_counter()
    with torch.no_grad():
        proba = predictor.predict_proba(query_x.to(device)).cpu().numpy()
    _sync(device)
    t2 = time.perf_counter()
    result = ModelPrediction(name, learner.name, proba, 1000 * (t1 - t0), 1000 * (t2 - t1), trace, labels)
    result.warning = adaptation_warning(trace)
    if not np.isfinite(proba).all() or any(not np.isfinite(r.loss) for r in trace):
        result.error = (
            "adaptation diverged (the support loss became NaN or infinite): lower the inner "
            "learning rate or the number of steps. The shared model is unchanged."
        )
        result.proba = np.zeros((0, proba.shape[-1]))
    return result


def predict_task(
    models: Mapping[str, MetaLearner],
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    true_labels: list[int | None] | None = None,
    settings: Mapping[str, Mapping[str, float]] | None = None,
) -> list[ModelPrediction]:
    """`adapt_and_predict` for each model by name, each with its own ``settings``."""
    return [
        adapt_and_predict(name, learner, support_x, support_y, query_x, true_labels, (settings or {}).get(name))
        for name, learner in models.items()
    ]


@dataclass
class Pick:
    """One model's answer for one query: the class it picked, how sure it was, and whether it is right."""

    predicted: int
    confidence: float  # the picked class's probability
    right: bool | None  # None when the query's true class is not known


def prediction_grid(results: Sequence[ModelPrediction], true_labels: Sequence[int | None]) -> list[dict[str, Pick]]:
    """For each query, each model's `Pick` by model name (models that failed are left out): the page's summary."""
    ok = [r for r in results if not r.error]
    rows = []
    for i, label in enumerate(true_labels):
        row = {}
        for r in ok:
            pred = int(r.proba[i].argmax())
            row[r.model] = Pick(pred, float(r.proba[i, pred]), None if label is None else pred == label)
        rows.append(row)
    return rows

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from playground.algorithms import create_learner
from playground.data.episodes import TaskSampler
from playground.interactive.inference import adapt_and_predict


def test_adapt_and_predict_times_and_scores(glyphs_test):
    learner = create_learner("protonet", hidden=16)
    task = TaskSampler(glyphs_test, 4, 2, 2, seed=0).sample()
    labels = task.query_y.tolist()
    labels[0] = None  # an unlabelled query does not count towards accuracy
    r = adapt_and_predict("p", learner, task.support_x, task.support_y, task.query_x, labels)
    assert r.proba.shape == (8, 4) and np.allclose(r.proba.sum(-1), 1, atol=1e-5)
    assert r.adapt_ms > 0 and r.predict_ms > 0 and r.error is None
    expected = np.mean([p == t for p, t in zip(r.predicted, labels) if t is not None])
    assert math.isclose(r.accuracy, expected)
    assert adapt_and_predict("p", learner, task.support_x, task.support_y, task.query_x).accuracy is None


def test_diverged_adaptation_is_reported_not_raised(glyphs_test):
    learner = create_learner("maml", hidden=16)
    with torch.no_grad():
        learner.head_bias.fill_(float("nan"))  # a broken model: every loss is NaN
    task = TaskSampler(glyphs_test, 3, 1, 1, seed=0).sample()
    r = adapt_and_predict("m", learner, task.support_x, task.support_y, task.query_x, settings={"n_steps": 2})
    assert r.error and "diverged" in r.error
    assert r.predicted == [] and r.accuracy is None


def test_adapt_settings_come_from_the_card_cell_nearest_the_task():
    from pathlib import Path

    from playground.interactive.inference import task_adapt_options
    from playground.zoo.shipped import ModelEntry

    cells = [
        {"n_way": 5, "k_shot": 1, "accuracy": 0.9},  # measured with the checkpoint's own steps and rate
        {"n_way": 5, "k_shot": 5, "accuracy": 0.9, "inner_steps": 10},
        {"n_way": 20, "k_shot": 1, "accuracy": 0.9, "inner_steps": 30, "inner_lr": 0.1},
        {"n_way": 20, "k_shot": 5, "accuracy": 0.9, "inner_steps": 40, "inner_lr": 0.05},
    ]
    entry = ModelEntry("m", Path("m.pt"), {"evaluation": {"results": cells}})
    assert entry.adapt_defaults(5, 1) == {} and entry.adapt_defaults(4, 1) == {}
    assert entry.adapt_defaults(5, 4) == {"n_steps": 10} and entry.adapt_defaults(3, 5) == {"n_steps": 10}
    assert entry.adapt_defaults(16, 1) == {"n_steps": 30, "inner_lr": 0.1} == entry.adapt_defaults(20, 2)
    assert entry.adapt_defaults(12, 5) == {"n_steps": 40, "inner_lr": 0.05}
    assert ModelEntry("m", Path("m.pt"), None).adapt_defaults(20, 1) == {}

    learner = create_learner("maml", hidden=16, test_inner_steps=2, inner_lr=0.4)
    opts = {o.name: o for o in task_adapt_options(learner, {"n_steps": 30, "inner_lr": 0.1})}
    assert opts["n_steps"].default == 30 and opts["n_steps"].low <= 30 <= opts["n_steps"].high
    assert opts["inner_lr"].default == 0.1 and opts["inner_lr"].low <= 0.1 <= opts["inner_lr"].high
    own = {o.name: o.default for o in task_adapt_options(learner, {})}
    assert own == {"n_steps": 2, "inner_lr": 0.4}
    assert {o.name: o.default for o in task_adapt_options(learner, {"n_steps": 30})} == {"n_steps": 30, "inner_lr": 0.4}
    # a card's value outside the allowed range starts at the range's nearest end
    far = {o.name: o.default for o in task_adapt_options(learner, {"n_steps": 10_000, "inner_lr": 1e-9})}
    assert far == {"n_steps": opts["n_steps"].high, "inner_lr": opts["inner_lr"].low}
    assert isinstance(far["n_steps"], int)
    assert task_adapt_options(create_learner("protonet", hidden=16), {"n_steps": 30}) == []


@pytest.mark.omniglot
@pytest.mark.parametrize("name", ["maml_lake", "metasgd_lake"])
def test_overshooting_adaptation_is_flagged_at_the_top_of_the_ranges_not_at_the_cards_settings(omniglot, name):
    """At 50 steps of the highest rate a 20-way task's support loss climbs far above its start and the
    queries fall towards chance, with no NaN: the person is told, naming what to lower."""
    from playground.data.protocols import evaluation_alphabet_dataset
    from playground.zoo.shipped import shipped_models

    entry = next(m for m in shipped_models() if m.name == name)
    learner = entry.load("cpu", warm=False)
    task = TaskSampler(evaluation_alphabet_dataset(omniglot), 20, 5, 5, seed=0).sample()
    labels = task.query_y.tolist()
    top = {o.name: o.high for o in learner.adapt_options()}

    wrecked = adapt_and_predict(name, learner, task.support_x, task.support_y, task.query_x, labels, top)
    assert wrecked.error is None  # not NaN: the old check saw nothing wrong
    assert wrecked.accuracy < 0.3 and wrecked.warning and "overshot" in wrecked.warning
    assert "lower the inner learning rate" in wrecked.warning.lower() and "fewer inner steps" in wrecked.warning

    card = adapt_and_predict(
        name, learner, task.support_x, task.support_y, task.query_x, labels, entry.adapt_defaults(20, 5)
    )
    assert card.accuracy > 0.9 and card.warning is None and card.error is None


def test_adaptation_warning_reads_the_trace():
    from playground.algorithms import StepRecord
    from playground.interactive.inference import adaptation_warning

    falling = [StepRecord(0, 3.0, 0.05), StepRecord(1, 1.0, 0.8), StepRecord(2, 0.2, 1.0)]
    assert adaptation_warning(falling) is None
    assert adaptation_warning(falling[:1]) is None  # no inner loop: nothing to overshoot
    assert adaptation_warning([StepRecord(0, 3.0, 0.05), StepRecord(1, 3.05, 0.1)]) is None  # within the margin
    spiked = [StepRecord(0, 3.0, 0.05), StepRecord(1, 40.0, 0.05), StepRecord(2, 2.9, 0.08)]
    text = adaptation_warning(spiked)
    assert text and "40.00 at step 1" in text and "ended at 2.90" in text and "8% after" in text
    worse = [StepRecord(0, 3.0, 0.05), StepRecord(1, 9.0, 0.05)]
    assert "from 3.00 to 9.00" in adaptation_warning(worse)
    assert adaptation_warning([StepRecord(0, 3.0, 0.05), StepRecord(1, float("nan"), 0.0)]) is None  # diverged


def test_prediction_grid_gives_each_models_pick_confidence_and_verdict():
    from playground.interactive.inference import ModelPrediction, prediction_grid

    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    good = ModelPrediction("good", "protonet", proba, 1.0, 1.0)
    failed = ModelPrediction("failed", "maml", np.zeros((0, 3)), 0.0, 0.0, error="adaptation diverged")
    grid = prediction_grid([good, failed], [0, 1, None])
    assert [set(row) for row in grid] == [{"good"}] * 3  # a failed model has no column
    assert [(p.predicted, p.right) for p in (row["good"] for row in grid)] == [(0, True), (2, False), (0, None)]
    assert grid[1]["good"].confidence == pytest.approx(0.6)


def test_a_loss_that_rises_for_a_step_and_settles_is_not_an_overshoot():
    from playground.algorithms import StepRecord
    from playground.interactive.inference import adaptation_warning

    def trace(losses):
        return [StepRecord(i, loss, 0.5) for i, loss in enumerate(losses)]

    assert adaptation_warning(trace([1.61, 1.7, 1.88, 0.5, 0.01])) is None  # maml_lake at its card's 30 steps
    assert adaptation_warning(trace([3.0, 44.7, 2.81])) is not None  # far above the start, even if it comes back
    assert adaptation_warning(trace([1.0, 0.9, 1.3])) is not None  # ends worse than it started
    assert adaptation_warning(trace([1.0, 1.05, 0.2])) is None

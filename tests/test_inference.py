from __future__ import annotations

import math

import numpy as np
import torch

from playground.algorithms import create_learner
from playground.episodes import TaskSampler
from playground.inference import adapt_and_predict


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

    from playground.inference import task_adapt_options
    from playground.zoo import ModelEntry

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

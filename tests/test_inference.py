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

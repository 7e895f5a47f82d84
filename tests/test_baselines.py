from __future__ import annotations

import torch

from playground.algorithms import create_learner
from playground.episodes import TaskSampler
from playground.evaluation import evaluate_few_shot


def test_pixel_nn_picks_the_class_of_the_nearest_support_image(glyphs_test):
    learner = create_learner("pixel-nn")
    task = TaskSampler(glyphs_test, 5, 3, 4, seed=0).sample()
    pred = learner.adapt(task.support_x, task.support_y).predict(task.query_x)
    dists = torch.cdist(task.query_x.flatten(1), task.support_x.flatten(1))
    assert torch.equal(pred, task.support_y[dists.argmin(-1)])


def test_pixel_nn_batched_evaluation_matches_adapt_and_beats_chance(glyphs_test):
    learner = create_learner("pixel-nn")
    tasks = TaskSampler(glyphs_test, 5, 1, 3, seed=1).sample_batch(6)
    batched = learner.episode_accuracies(tasks)
    one_by_one = torch.stack(
        [(learner.adapt(t.support_x, t.support_y).predict(t.query_x) == t.query_y).float().mean() for t in tasks]
    )
    assert torch.equal(batched, one_by_one)
    acc = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    assert acc > 0.3  # 5-way chance is 0.2; raw pixels carry some signal, far less than a meta-learner


def test_pixel_nn_trains_as_a_no_op_through_the_common_interface(glyphs_test):
    learner = create_learner("pixel-nn", metric="cosine")
    stats = learner.meta_train_step(TaskSampler(glyphs_test, 5, 1, 2, seed=0).sample_batch(2))
    assert stats.loss == 0.0 and 0.0 <= stats.accuracy <= 1.0
    assert learner.device == torch.device("cpu") and list(learner.parameters()) == []

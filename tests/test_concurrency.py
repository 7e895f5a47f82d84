"""One shared model, many threads adapting at once: every call gets its own right answer and the
shared weights stay bit-identical (the app serves every session from one cached model)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from playground.algorithms import available, create_learner, learner_class
from playground.data.episodes import TaskSampler
from playground.interactive.explain import adaptation_steps, embedding_view

from synthetic import meta_train_step

ALGORITHMS = available()


@pytest.fixture(scope="module")
def tasks(glyphs_test):
    sampler = TaskSampler(glyphs_test, 5, 2, 3, seed=11)
    return [sampler.sample() for _ in range(8)]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_concurrent_adapt_on_one_shared_model(algorithm, tasks, glyphs_train):
    torch.manual_seed(0)
    # Small and quick: a narrow network, and few steps for the baseline that trains from scratch.
    options = {"hidden": 16, **({"test_inner_steps": 10} if algorithm == "scratch" else {})}
    accepted = learner_class(algorithm).hyperparameters()
    learner = create_learner(algorithm, **{k: v for k, v in options.items() if k in accepted})
    learner.prepare_training(glyphs_train)
    sampler = TaskSampler(glyphs_train, 5, 2, 3, seed=0)
    for _ in range(2):  # a couple of meta-steps, so the weights are not the initial ones
        meta_train_step(learner, sampler.sample_batch(2))
    before = {k: v.clone() for k, v in learner.state_dict().items()}

    def run(i: int) -> torch.Tensor:
        t = tasks[i % len(tasks)]
        with torch.no_grad():
            return learner.adapt(t.support_x, t.support_y).predict_proba(t.query_x)

    expected = [run(i) for i in range(len(tasks))]  # one at a time
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(run, range(3 * len(tasks))))  # 36 calls, 8 at a time, interleaved
    for i, proba in enumerate(got):
        torch.testing.assert_close(proba, expected[i % len(tasks)], atol=1e-5, rtol=1e-4)
    assert all(torch.equal(before[k], v) for k, v in learner.state_dict().items())


def test_concurrent_explanations_do_not_mix_tasks(tasks):
    torch.manual_seed(0)
    learner = create_learner("maml", hidden=16)
    names = list("abcde")

    def explain(i: int):
        t = tasks[i % 4]
        view = embedding_view(learner, t.support_x, t.support_y, t.query_x, names, t.query_y.tolist(), method="pca")
        steps = adaptation_steps(learner, t.support_x, t.support_y, t.query_x, 2, method="pca")
        return view, steps

    expected = [explain(i) for i in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(explain, range(16)))
    for i, (view, steps) in enumerate(got):
        want_view, want_steps = expected[i % 4]
        assert view.label == want_view.label and view.predicted == want_view.predicted
        torch.testing.assert_close(torch.tensor(view.coords), torch.tensor(want_view.coords), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(
            torch.tensor(steps.query_proba), torch.tensor(want_steps.query_proba), atol=1e-5, rtol=1e-4
        )

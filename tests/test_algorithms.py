"""Every registered algorithm: real learning on synthetic glyphs, and adapt never mutates."""

from __future__ import annotations

import pytest
import torch

from playground.algorithms import MetaLearner, available, create_learner, learner_class
from playground.data.episodes import TaskSampler
from playground.evaluation.few_shot import evaluate_few_shot

from synthetic import meta_train_step

FAST = {"hidden": 32, "outer_lr": 3e-3}
# Per-algorithm settings for a short, CPU-cheap meta-training run.
LEARNING_RUNS = {
    "protonet": ({}, 40),
    "maml": ({"inner_lr": 0.4, "inner_steps": 1, "test_inner_steps": 3}, 80),
    "maml-first-order": ({"inner_lr": 0.4, "inner_steps": 1, "test_inner_steps": 3, "first_order": True}, 60),
}


def _make(name: str, **extra) -> MetaLearner:
    # "maml-first-order" is a variant of a registered algorithm; a registered name is itself.
    algo = name if name in available() else name.rsplit("-", 2)[0]
    opts = {**FAST, **LEARNING_RUNS.get(name, ({}, 0))[0], **extra}
    accepted = learner_class(algo).hyperparameters()
    return create_learner(algo, **{k: v for k, v in opts.items() if k in accepted})


def test_registry_lists_core_algorithms():
    names = available()
    assert {"protonet", "maml"} <= set(names)
    for name in names:
        assert issubclass(learner_class(name), MetaLearner)
        assert learner_class(name).name == name


def test_unknown_algorithm_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown algorithm 'nope'.*protonet"):
        create_learner("nope")


def test_unknown_option_is_a_clear_error():
    with pytest.raises(TypeError, match="unknown options: bogus"):
        create_learner("protonet", bogus=1)


@pytest.mark.parametrize("name", list(LEARNING_RUNS))
def test_meta_training_lifts_accuracy_far_above_chance(name, glyphs_train, glyphs_test):
    torch.manual_seed(0)
    learner = _make(name)
    before = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    sampler = TaskSampler(glyphs_train, 5, 1, 5, seed=0)
    iterations = LEARNING_RUNS[name][1]
    for _ in range(iterations):
        stats = learner.meta_train_step(sampler.sample_batch(4))
        assert torch.isfinite(torch.tensor(stats.loss))
    after = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    # 5-way chance is 20%; held-out synthetic classes must be well above it and improved.
    assert after >= 0.4, f"{name}: {after:.2f} after meta-training"
    assert after >= before + 0.1, f"{name}: {before:.2f} -> {after:.2f}"


@pytest.mark.parametrize("algo", available())
def test_adapt_leaves_meta_weights_bit_identical(algo, glyphs_test):
    torch.manual_seed(0)
    learner = _make(algo)
    # A few meta-steps so optimiser state and batch-norm statistics are non-trivial.
    sampler = TaskSampler(glyphs_test, 5, 2, 3, seed=0)
    for _ in range(2):
        meta_train_step(learner, sampler.sample_batch(2))
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    task = sampler.sample()
    for steps in (None, 5):
        pred = learner.adapt(task.support_x, task.support_y, n_steps=steps)
        proba = pred.predict_proba(task.query_x)
        assert proba.shape == (task.query_x.shape[0], 5)
        assert torch.allclose(proba.sum(-1), torch.ones(len(proba)), atol=1e-5)
        pred.predict_proba(task.query_x[:1])  # a lone query works too
    after = learner.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), f"adapt changed {k}"
    assert not learner.training


@pytest.mark.parametrize("algo", available())
def test_adapt_handles_any_way_count_and_returns_trace(algo, glyphs_test):
    learner = _make(algo)
    for n_way in (2, 7):
        task = TaskSampler(glyphs_test, n_way, 2, 2, seed=1).sample()
        pred = learner.adapt(task.support_x, task.support_y)
        assert pred.n_way == n_way
        assert pred.predict(task.query_x).shape == (n_way * 2,)
        assert len(pred.trace) >= 1
        assert all(0.0 <= r.accuracy <= 1.0 for r in pred.trace)


def test_maml_trace_records_every_inner_step(glyphs_test):
    learner = _make("maml")
    task = TaskSampler(glyphs_test, 5, 1, 1, seed=2).sample()
    pred = learner.adapt(task.support_x, task.support_y, n_steps=4, inner_lr=0.05)
    assert [r.step for r in pred.trace] == [0, 1, 2, 3, 4]
    # Adapting on the support set must fit it: the loss goes down over the steps.
    assert pred.trace[-1].loss < pred.trace[0].loss


def test_adapt_rejects_bad_support(glyphs_test):
    learner = _make("protonet")
    task = TaskSampler(glyphs_test, 3, 1, 1, seed=0).sample()
    with pytest.raises(ValueError, match="missing"):
        learner.adapt(task.support_x, torch.tensor([0, 2, 2]))
    with pytest.raises(ValueError, match=r"\[n, 1, 28, 28\]"):
        learner.adapt(task.support_x[:, :, :10], task.support_y)


def test_maml_second_order_differs_from_first_order(glyphs_test):
    """The second-order meta-gradient flows through the inner loop; first-order drops that term."""
    torch.manual_seed(0)
    so = _make("maml")
    fo = _make("maml", first_order=True)
    fo.load_state_dict(so.state_dict())
    tasks = TaskSampler(glyphs_test, 5, 1, 2, seed=0).sample_batch(2)
    grads = []
    for learner in (so, fo):
        learner.train()
        loss, _ = learner.meta_loss(tasks)
        (g,) = torch.autograd.grad(loss, [learner.body.features[0][0].weight])
        grads.append(g)
        learner.eval()
    assert not torch.allclose(grads[0], grads[1])


def test_maml_vmap_and_loop_agree(glyphs_test):
    torch.manual_seed(0)
    loop = _make("maml", task_batching="loop")
    vm = _make("maml", task_batching="vmap")
    vm.load_state_dict(loop.state_dict())
    tasks = TaskSampler(glyphs_test, 5, 1, 2, seed=0).sample_batch(3)
    out = []
    for learner in (loop, vm):
        learner.train()
        loss, _ = learner.meta_loss(tasks)
        (g,) = torch.autograd.grad(loss, [learner.head_weight])
        out.append((loss.detach(), g))
        learner.eval()
    assert torch.allclose(out[0][0], out[1][0], atol=1e-5)
    assert torch.allclose(out[0][1], out[1][1], atol=1e-4)


def test_maml_never_vmaps_where_vmap_gradients_are_inexact():
    learner = _make("maml", task_batching="vmap")
    cuda = torch.device("cuda")
    assert learner.batching_strategy(cuda, second_order_steps=1).name == "vmap"
    assert learner.batching_strategy(cuda, second_order_steps=2).name == "loop"  # batch-norm double-backward
    assert _make("maml", task_batching="auto").batching_strategy(torch.device("cpu")).name != "vmap"

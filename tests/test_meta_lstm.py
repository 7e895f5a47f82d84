"""Meta-LSTM (Ravi & Larochelle 2017): real learning, the update rule, meta-gradients, safety."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from playground.algorithms import create_learner
from playground.algorithms.meta_lstm import LSTM, MetaLSTM, preprocess
from playground.data.episodes import TaskSampler
from playground.evaluation.few_shot import evaluate_few_shot
from playground.zoo.checkpoints import load_learner, save_checkpoint

# A CPU-cheap configuration: a narrow Conv-4, a 4-unit first LSTM (the paper's is 20) and
# three updates, at train and test time.
FAST = {"hidden": 32, "outer_lr": 3e-3, "lstm_hidden": 4, "inner_steps": 3, "test_inner_steps": 3}


def _tasks(glyphs, n_way=5, k_shot=1, n_query=2, batch=3, seed=0):
    return TaskSampler(glyphs, n_way, k_shot, n_query, seed=seed).sample_batch(batch)


def _learner_weights(learner: MetaLSTM, n_way: int) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in learner.initial_fast_weights(n_way).items() if not k.startswith(LSTM)}


@pytest.mark.slow  # a meta-training run
def test_meta_training_lifts_held_out_accuracy(glyphs_train, glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("meta-lstm", **FAST)
    before = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    sampler = TaskSampler(glyphs_train, 5, 1, 5, seed=0)
    for _ in range(40):
        stats = learner.meta_train_step(sampler.sample_batch(4))
        assert math.isfinite(stats.loss) and 0.0 <= stats.accuracy <= 1.0
    after = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    print(f"meta-lstm: {before:.3f} -> {after:.3f}")
    # 5-way chance is 20%; held-out synthetic classes must be well above it and improved.
    assert after >= 0.4, f"{after:.2f} after meta-training"
    assert after >= before + 0.1, f"{before:.2f} -> {after:.2f}"
    assert not learner.training


def test_preprocessing_is_andrychowicz_with_p_10():
    # The threshold is e^-10 = 4.5e-5: (log|x| / 10, sign x) above it, (-1, e^10 x) below.
    x = torch.tensor([2.0, -0.5, 1e-3, 1e-5, -1e-6, 0.0])
    out = preprocess(x)
    big = torch.tensor([[math.log(2.0) / 10, 1.0], [math.log(0.5) / 10, -1.0], [math.log(1e-3) / 10, 1.0]])
    small = torch.tensor([[-1.0, 1e-5 * math.exp(10)], [-1.0, -1e-6 * math.exp(10)], [-1.0, 0.0]])
    assert torch.allclose(out, torch.cat([big, small]), atol=1e-6)


def test_initial_gates_are_near_sgd():
    learner = create_learner("meta-lstm", hidden=16, inner_lr=0.2)
    assert torch.sigmoid(learner.lstm["forget_bias"]) > 0.99
    assert torch.isclose(torch.sigmoid(learner.lstm["input_bias"]), torch.tensor(0.2))
    for name in ("forget_weight", "input_weight"):
        assert learner.lstm[name].abs().max() <= 0.01


def _constant_gates(learner: MetaLSTM, lr: float) -> None:
    """Forget gate exactly 1 (sigmoid(100) rounds to 1 in float32), input gate exactly ``lr``."""
    with torch.no_grad():
        learner.lstm["forget_weight"].zero_()
        learner.lstm["forget_bias"].fill_(100.0)
        learner.lstm["input_weight"].zero_()
        learner.lstm["input_bias"].fill_(math.log(lr / (1 - lr)))


def test_update_with_constant_gates_is_plain_sgd(glyphs_test):
    torch.manual_seed(0)
    # A per-class random head, so the body's gradient is not zero (a zero head gives equal logits).
    learner = create_learner("meta-lstm", hidden=16, head="per_class", inner_lr=0.3)
    with torch.no_grad():
        learner.head_weight.normal_(0, 0.5)
        learner.head_bias.normal_(0, 0.5)
    _constant_gates(learner, 0.25)
    t = TaskSampler(glyphs_test, 5, 1, 1, seed=0).sample()
    for steps, adapt_lr, lr in ((1, None, 0.25), (2, None, 0.25), (1, 0.6, 0.25 * 0.6 / 0.3)):
        expected = {k: v.clone() for k, v in _learner_weights(learner, 5).items()}
        for _ in range(steps):
            with torch.enable_grad():
                params = {k: v.clone().requires_grad_() for k, v in expected.items()}
                loss = F.cross_entropy(learner.forward_fast(params, t.support_x), t.support_y)
                grads = torch.autograd.grad(loss, list(params.values()))
            expected = {k: v - lr * g for (k, v), g in zip(expected.items(), grads)}
        fast = learner.adapt(t.support_x, t.support_y, n_steps=steps, inner_lr=adapt_lr).fast
        assert fast.keys() == expected.keys()
        for k in expected:
            assert torch.allclose(fast[k], expected[k], atol=1e-6), (k, steps, adapt_lr)
        assert not torch.equal(fast["body.features.0.0.weight"], learner.body.features[0][0].weight)


def test_every_meta_parameter_receives_a_meta_gradient(glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("meta-lstm", hidden=16, lstm_hidden=5, inner_steps=2)
    learner.train()
    loss, _ = learner.meta_loss(_tasks(glyphs_test))
    names = [k for k, _ in learner.named_parameters()]
    grads = dict(zip(names, torch.autograd.grad(loss, list(learner.parameters()), allow_unused=True)))
    learner.eval()
    # Batch norm cancels the conv biases' gradients; the LSTM's and the learner's weights all learn.
    conv_biases = {k for k in names if k.startswith("body.") and k.endswith(".0.bias")}
    for k, g in grads.items():
        assert g is not None and torch.isfinite(g).all(), k
        if k not in conv_biases:
            assert g.abs().sum() > 0, f"no meta-gradient for {k}"
    assert {f"lstm.{k}" for k in learner.lstm} <= set(grads)


def test_first_order_treats_the_gradient_as_a_constant(glyphs_test):
    """The paper's default drops the second-order terms; first_order=False keeps them."""
    tasks = _tasks(glyphs_test)
    grads = {}
    for first_order in (True, False):
        torch.manual_seed(0)
        learner = create_learner("meta-lstm", hidden=16, lstm_hidden=4, inner_steps=2, first_order=first_order)
        learner.train()
        loss, _ = learner.meta_loss(tasks)
        grads[first_order] = torch.autograd.grad(loss, [learner.body.features[0][0].weight])[0]
        learner.eval()
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values())
    assert not torch.allclose(grads[True], grads[False])


def test_meta_gradient_is_clipped_inside_the_train_step(glyphs_test):
    tasks = _tasks(glyphs_test, batch=2)
    norms, hooked = {}, []
    for clip in (0.0, 0.25):
        torch.manual_seed(0)
        learner = create_learner("meta-lstm", hidden=16, lstm_hidden=4, inner_steps=2, grad_clip=clip)
        learner.meta_train_step(tasks, grad_hook=lambda m: hooked.append(m.lstm["input_bias"].grad))
        # meta_train_step zeroes gradients before the backward pass, so they are still there after it.
        norms[clip] = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in learner.parameters()]))
    assert norms[0.0] > 0.25, "the unclipped gradient is too small for this test to show anything"
    assert norms[0.25] <= 0.25 * (1 + 1e-4)
    assert len(hooked) == 2 and all(g is not None for g in hooked)


def test_adapt_is_functional(glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("meta-lstm", **FAST)
    learner.meta_train_step(_tasks(glyphs_test, batch=2))
    learner.optimizer.zero_grad(set_to_none=True)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    opt_state = copy.deepcopy(learner.optimizer.state_dict())
    t = TaskSampler(glyphs_test, 3, 2, 2, seed=4).sample()
    for steps, lr in ((None, None), (0, None), (5, 0.05)):
        pred = learner.adapt(t.support_x, t.support_y, n_steps=steps, inner_lr=lr)
        assert pred.predict_proba(t.query_x).shape == (6, 3)
        assert pred.predict(t.query_x[:1]).shape == (1,)
        assert pred.embed(t.query_x).shape == (6, 32)
    after = learner.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in learner.parameters())
    state = learner.optimizer.state_dict()["state"]
    for i, entry in state.items():
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(opt_state["state"][i][k])) for k, v in entry.items())
    assert not learner.training


def test_trace_has_one_record_per_step_and_one_after(glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("meta-lstm", hidden=16)
    t = TaskSampler(glyphs_test, 5, 1, 1, seed=2).sample()
    for steps in (0, 4):
        pred = learner.adapt(t.support_x, t.support_y, n_steps=steps)
        assert [r.step for r in pred.trace] == list(range(steps + 1))
    # At initialisation the LSTM is (almost) SGD: it fits the support set.
    assert pred.trace[-1].loss < pred.trace[0].loss
    assert learner.adapt(t.support_x, t.support_y).trace[-1].step == learner.test_inner_steps


@pytest.mark.parametrize("n_way", [2, 20])
def test_any_way_count_with_five_shots(n_way, glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("meta-lstm", **FAST)
    learner.meta_train_step(_tasks(glyphs_test, batch=2))
    t = TaskSampler(glyphs_test, n_way, 5, 1, seed=3).sample()
    pred = learner.adapt(t.support_x, t.support_y)
    assert pred.n_way == n_way and pred.fast["head.weight"].shape == (n_way, 32)
    proba = pred.predict_proba(t.query_x)
    assert proba.shape == (n_way, n_way) and torch.allclose(proba.sum(-1), torch.ones(n_way), atol=1e-5)
    assert len(pred.trace) == learner.test_inner_steps + 1
    assert all(0.0 <= r.accuracy <= 1.0 and math.isfinite(r.loss) for r in pred.trace)


def test_checkpoint_round_trip(glyphs_test, tmp_path):
    torch.manual_seed(0)
    learner = create_learner(
        "meta-lstm", hidden=16, lstm_hidden=6, inner_lr=0.2, inner_steps=2, test_inner_steps=4, grad_clip=0.5
    )
    learner.meta_train_step(_tasks(glyphs_test, batch=2))
    loaded = load_learner(save_checkpoint(tmp_path / "m.pt", learner))
    assert type(loaded) is MetaLSTM and loaded.config() == learner.config()
    assert {"lstm_hidden": 6, "grad_clip": 0.5, "inner_lr": 0.2, "first_order": True}.items() <= loaded.config().items()
    for k, v in learner.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    t = TaskSampler(glyphs_test, 5, 1, 2, seed=1).sample()
    a = learner.adapt(t.support_x, t.support_y).predict_proba(t.query_x)
    assert torch.equal(a, loaded.adapt(t.support_x, t.support_y).predict_proba(t.query_x))


def test_vmap_and_loop_agree(glyphs_test):
    torch.manual_seed(0)
    loop = create_learner("meta-lstm", hidden=16, lstm_hidden=4, inner_steps=2, task_batching="loop")
    vm = create_learner("meta-lstm", hidden=16, lstm_hidden=4, inner_steps=2, task_batching="vmap")
    vm.load_state_dict(loop.state_dict())
    tasks = _tasks(glyphs_test)
    out = []
    for learner in (loop, vm):
        learner.train()
        loss, _ = learner.meta_loss(tasks)
        grads = torch.autograd.grad(loss, [learner.body.features[0][0].weight, learner.lstm["bias"]])
        out.append((loss.detach(), grads))
        learner.eval()
    assert torch.allclose(out[0][0], out[1][0], atol=1e-5)
    for a, b in zip(out[0][1], out[1][1]):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert torch.equal(loop.episode_accuracies(tasks), vm.episode_accuracies(tasks))


def test_test_time_updates_default_to_the_trained_number():
    learner = create_learner("meta-lstm", hidden=16, inner_steps=3)
    assert learner.test_inner_steps == 3 and learner.config()["test_inner_steps"] == 3
    assert create_learner("meta-lstm", hidden=16, inner_steps=3, test_inner_steps=7).test_inner_steps == 7


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="inner_lr"):
        create_learner("meta-lstm", inner_lr=1.5)
    with pytest.raises(ValueError, match="lstm_hidden"):
        create_learner("meta-lstm", lstm_hidden=0)
    with pytest.raises(ValueError, match="grad_clip"):
        create_learner("meta-lstm", grad_clip=-1.0)


def test_adapt_options_describe_the_input_gate_scale(glyphs_test):
    learner = create_learner("meta-lstm", hidden=16, inner_lr=0.2, test_inner_steps=4)
    options = {o.name: o for o in learner.adapt_options()}
    assert options["n_steps"].default == 4 and options["inner_lr"].default == 0.2
    assert "scale" in options["inner_lr"].label
    # The default value of the scale reproduces the learned update.
    t = TaskSampler(glyphs_test, 5, 1, 2, seed=1).sample()
    a = learner.adapt(t.support_x, t.support_y).predict_proba(t.query_x)
    b = learner.adapt(t.support_x, t.support_y, inner_lr=options["inner_lr"].default).predict_proba(t.query_x)
    assert torch.equal(a, b)

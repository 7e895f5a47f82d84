"""Reptile, Meta-SGD, ANIL and MAML's per-example batch norm: learning and behaviour."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from playground.algorithms import create_learner
from playground.data.episodes import TaskSampler
from playground.evaluation.few_shot import evaluate_few_shot
from playground.zoo.checkpoints import load_learner, save_checkpoint

# Short CPU-cheap meta-training runs: (options, iterations, queries per class while training).
LEARNING_RUNS = {
    "reptile": (
        {"inner_lr": 0.1, "inner_steps": 4, "test_inner_steps": 4, "outer_optimizer": "sgd", "outer_lr": 1.0},
        40,
        1,
    ),
    "metasgd": ({"inner_lr": 0.4, "inner_steps": 1, "test_inner_steps": 1, "outer_lr": 3e-3}, 40, 5),
    "anil": ({"inner_lr": 0.4, "inner_steps": 5, "test_inner_steps": 10, "outer_lr": 3e-3}, 40, 5),
}


def _trained(name, glyphs_train, glyphs_test):
    torch.manual_seed(0)
    options, iterations, n_query = LEARNING_RUNS[name]
    learner = create_learner(name, hidden=32, **options)
    before = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    sampler = TaskSampler(glyphs_train, 5, 1, n_query, seed=0)
    for _ in range(iterations):
        stats = learner.meta_train_step(sampler.sample_batch(4))
        assert torch.isfinite(torch.tensor(stats.loss)) and 0.0 <= stats.accuracy <= 1.0
    after = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    return learner, before, after


@pytest.mark.parametrize("name", list(LEARNING_RUNS))
def test_meta_training_lifts_held_out_accuracy(name, glyphs_train, glyphs_test):
    learner, before, after = _trained(name, glyphs_train, glyphs_test)
    print(f"{name}: {before:.3f} -> {after:.3f}")
    # 5-way chance is 20%; held-out synthetic classes must be well above it and improved.
    assert after >= 0.4, f"{name}: {after:.2f} after meta-training"
    assert after >= before + 0.1, f"{name}: {before:.2f} -> {after:.2f}"
    assert not learner.training


def _tasks(glyphs, n_way=5, k_shot=1, n_query=2, batch=3, seed=0):
    return TaskSampler(glyphs, n_way, k_shot, n_query, seed=seed).sample_batch(batch)


# -- Reptile ------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["shared", "per_class"])
@pytest.mark.parametrize("inner_optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("outer_lr", [1.0, 0.5])
def test_reptile_moves_meta_weights_toward_mean_adapted_weights(head, inner_optimizer, outer_lr, glyphs_test):
    torch.manual_seed(0)
    inner_lr = 0.1 if inner_optimizer == "sgd" else 0.01
    learner = create_learner(
        "reptile",
        hidden=16,
        head=head,
        inner_optimizer=inner_optimizer,
        inner_lr=inner_lr,
        inner_steps=3,
        outer_optimizer="sgd",
        outer_lr=outer_lr,
        # The update rule, not the batching (tested on its own): adapt() below runs in this thread, like the loop.
        task_batching="loop",
    )
    with torch.no_grad():  # a non-zero head, so every row and the mean over rows matter
        learner.head_weight.normal_(0, 0.1)
        learner.head_bias.normal_(0, 0.1)
    tasks = _tasks(glyphs_test)
    before = {k: v.detach().clone() for k, v in learner.named_parameters()}
    # Independently: adapt to each task's images (support + query) through the public adapt().
    adapted = []
    for i in range(len(tasks)):
        t = tasks[i]
        x, y = torch.cat([t.support_x, t.query_x]), torch.cat([t.support_y, t.query_y])
        adapted.append(learner.adapt(x, y, n_steps=3).fast)
    learner.meta_train_step(tasks)
    for key, name in [("head.weight", "head_weight"), ("head.bias", "head_bias")] + [
        (f"body.{k}", f"body.{k}") for k, _ in learner.body.named_parameters()
    ]:
        target = torch.stack([a[key] for a in adapted]).mean(0)
        if head == "shared" and key.startswith("head."):
            target = target.mean(0, keepdim=True)
        expected = before[name] + outer_lr * (target - before[name])
        got = dict(learner.named_parameters())[name].detach()
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4), f"{name}: {(got - expected).abs().max()}"
    assert (learner.body.features[0][0].weight - before["body.features.0.0.weight"]).abs().max() > 1e-3


def test_reptile_shared_head_stays_put_with_sgd_but_moves_with_adam(glyphs_test):
    """A cross-entropy gradient sums to zero over the classes: SGD never moves the rows' mean."""
    tasks = _tasks(glyphs_test)
    for inner_optimizer, lr, moves in (("sgd", 0.1, False), ("adam", 0.01, True)):
        torch.manual_seed(0)
        learner = create_learner(
            "reptile",
            hidden=16,
            inner_optimizer=inner_optimizer,
            inner_lr=lr,
            inner_steps=3,
            outer_optimizer="sgd",
            outer_lr=1.0,
        )
        body0 = learner.body.features[0][0].weight.detach().clone()
        learner.meta_train_step(tasks)
        assert not torch.equal(learner.body.features[0][0].weight, body0)
        head_moved = learner.head_weight.abs().max() > 1e-5
        assert bool(head_moved) == moves, inner_optimizer


def test_reptile_inner_adam_matches_torch_adam(glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("reptile", hidden=16, head="per_class", inner_optimizer="adam", inner_lr=0.01)
    t = TaskSampler(glyphs_test, 5, 2, 1, seed=3).sample()
    fast = learner.adapt(t.support_x, t.support_y, n_steps=4).fast
    # The same 4 steps with torch.optim.Adam(betas=(0, 0.999)) on a copy of the meta-weights.
    ref = copy.deepcopy(learner)
    opt = torch.optim.Adam(ref.parameters(), lr=0.01, betas=(0.0, 0.999), eps=1e-8)
    for _ in range(4):
        opt.zero_grad()
        F.cross_entropy(ref.forward_fast(ref.initial_fast_weights(5), t.support_x), t.support_y).backward()
        opt.step()
    expected = ref.initial_fast_weights(5)
    # Batch norm cancels the conv biases: their gradient is rounding noise, which Adam's
    # normalisation turns into steps that differ between any two implementations.
    for k in [k for k in fast if not (k.startswith("body.") and k.endswith(".0.bias"))]:
        assert torch.allclose(fast[k], expected[k], atol=1e-5), k
    assert not torch.allclose(fast["head.weight"], learner.head_weight)


@pytest.mark.parametrize("batching", ["vmap", "threads"])
@pytest.mark.parametrize("inner_optimizer", ["sgd", "adam"])
def test_reptile_batched_and_loop_agree(inner_optimizer, batching, glyphs_test, monkeypatch):
    import playground.algorithms.reptile as reptile_module

    calls = []
    threaded = reptile_module.map_tasks
    monkeypatch.setattr(reptile_module, "map_tasks", lambda fn, n: calls.append(n) or threaded(fn, n))
    torch.manual_seed(0)
    options = {"hidden": 16, "inner_steps": 2, "inner_optimizer": inner_optimizer, "inner_lr": 0.05}
    loop = create_learner("reptile", task_batching="loop", **options)
    vm = create_learner("reptile", task_batching=batching, **options)
    vm.load_state_dict(loop.state_dict())
    tasks = _tasks(glyphs_test)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # "threads": two workers, whatever the machine running the tests allows
    try:
        (fl, ll, al), (fv, lv, av) = loop.adapted_weights(tasks), vm.adapted_weights(tasks)
    finally:
        torch.set_num_threads(threads)
    assert calls == ([len(tasks)] if batching == "threads" else [])
    assert torch.allclose(ll, lv, atol=1e-5) and torch.equal(al, av)
    for k in fl:
        if inner_optimizer == "adam" and k.startswith("body.") and k.endswith(".0.bias"):
            continue  # batch norm cancels these gradients: Adam steps on rounding noise
        assert torch.allclose(fl[k], fv[k], atol=1e-5), k


# One second-order step through the body: with two or more, torch's vmap of batch norm's
# double backward gives meta-gradients about 0.1% off (the loop matches finite differences),
# for MAML too. ANIL's inner steps do not run through the body, so two are fine.
@pytest.mark.parametrize("algo, steps", [("metasgd", 1), ("anil", 2)])
def test_vmap_and_loop_agree(algo, steps, glyphs_test):
    torch.manual_seed(0)
    loop = create_learner(algo, hidden=16, task_batching="loop", inner_steps=steps)
    vm = create_learner(algo, hidden=16, task_batching="vmap", inner_steps=steps)
    vm.load_state_dict(loop.state_dict())
    tasks = _tasks(glyphs_test)
    out = []
    for learner in (loop, vm):
        learner.train()
        loss, _ = learner.meta_loss(tasks)
        out.append((loss.detach(), torch.autograd.grad(loss, [learner.body.features[0][0].weight])[0]))
        learner.eval()
    assert torch.allclose(out[0][0], out[1][0], atol=1e-5)
    assert torch.allclose(out[0][1], out[1][1], atol=1e-4)
    accs = [learner.episode_accuracies(tasks, n_steps=2) for learner in (loop, vm)]
    assert torch.equal(accs[0], accs[1])


def test_reptile_rejects_options_that_do_not_apply():
    with pytest.raises(ValueError, match="first-order by construction"):
        create_learner("reptile", first_order=True)
    with pytest.raises(ValueError, match="inner_optimizer"):
        create_learner("reptile", inner_optimizer="rmsprop")
    with pytest.raises(NotImplementedError):
        create_learner("reptile", hidden=16).meta_loss(None)


# -- Meta-SGD -----------------------------------------------------------------------------------
def test_metasgd_rates_are_learned_saved_and_loaded(glyphs_test, tmp_path):
    torch.manual_seed(0)
    learner = create_learner("metasgd", hidden=16, inner_lr=0.3, outer_lr=3e-3)
    rates = {k: v.detach().clone() for k, v in learner.learned_rates().items()}
    assert set(rates) == {f"body.{k}" for k, _ in learner.body.named_parameters()} | {"head.weight", "head.bias"}
    assert all(torch.all(r == 0.3) for r in rates.values())
    sampler = TaskSampler(glyphs_test, 5, 1, 2, seed=0)
    for _ in range(3):
        learner.meta_train_step(sampler.sample_batch(2))
    unchanged = {k for k, v in learner.learned_rates().items() if torch.equal(v, rates[k])}
    # Every rate whose weight has a gradient is learned. Batch norm cancels the conv biases'
    # gradients, and one step from the zero head has no head-bias gradient on balanced classes.
    no_gradient = {k for k in rates if k.startswith("body.") and k.endswith(".0.bias")} | {"head.bias"}
    assert unchanged <= no_gradient, f"rates that did not change: {unchanged - no_gradient}"
    # Element-wise: not just one scalar per tensor.
    w = learner.learned_rates()["body.features.0.0.weight"]
    assert w.shape == learner.body.features[0][0].weight.shape and w.unique().numel() > 1
    loaded = load_learner(save_checkpoint(tmp_path / "m.pt", learner))
    for k, v in learner.learned_rates().items():
        assert torch.equal(loaded.learned_rates()[k], v), k
    t = sampler.sample()
    a = learner.adapt(t.support_x, t.support_y).predict_proba(t.query_x)
    assert torch.equal(a, loaded.adapt(t.support_x, t.support_y).predict_proba(t.query_x))


def test_metasgd_first_order_still_trains_the_rates(glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("metasgd", hidden=16, first_order=True)
    learner.train()
    loss, _ = learner.meta_loss(_tasks(glyphs_test))
    grads = torch.autograd.grad(loss, list(learner.inner_rates.values()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_metasgd_inner_step_uses_the_learned_rates(glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("metasgd", hidden=16, head="per_class", inner_lr=0.2)
    with torch.no_grad():
        for r in learner.inner_rates.values():
            r.uniform_(0.0, 0.5)
    t = TaskSampler(glyphs_test, 5, 1, 1, seed=0).sample()
    fast0 = {k: v.detach() for k, v in learner.initial_fast_weights(5).items() if not k.startswith("rate.")}
    with torch.enable_grad():
        params = {k: v.clone().requires_grad_() for k, v in fast0.items()}
        loss = F.cross_entropy(learner.forward_fast(params, t.support_x), t.support_y)
        g = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    rates = learner.learned_rates()
    for scale, lr in ((1.0, None), (1.0, 0.2), (2.5, 0.5)):
        fast = learner.adapt(t.support_x, t.support_y, n_steps=1, inner_lr=lr).fast
        for k in fast0:
            expected = fast0[k] - scale * rates[k].detach() * g[k]
            assert torch.allclose(fast[k], expected, atol=1e-6), (k, lr)


def test_metasgd_shared_head_rates_expand_to_any_way(glyphs_test):
    learner = create_learner("metasgd", hidden=16)
    for n_way in (2, 7):
        fast = learner.initial_fast_weights(n_way)
        assert fast["rate.head.weight"].shape == fast["head.weight"].shape == (n_way, 16)
        assert fast["rate.head.bias"].shape == (n_way,)
    with pytest.raises(ValueError, match="inner_lr"):
        create_learner("metasgd", inner_lr=0.0)


# -- ANIL ---------------------------------------------------------------------------------------
def test_anil_adapts_only_the_head(glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("anil", hidden=16)
    t = TaskSampler(glyphs_test, 5, 1, 2, seed=0).sample()
    pred = learner.adapt(t.support_x, t.support_y, n_steps=3)
    initial = learner.initial_fast_weights(5)
    for k, v in pred.fast.items():
        if k.startswith("body."):
            assert torch.equal(v, initial[k]), f"adapt changed {k}"
        else:
            assert not torch.equal(v, initial[k]), f"adapt did not change {k}"
    assert pred.trace[-1].loss < pred.trace[0].loss


def test_anil_meta_trains_the_body_through_the_head(glyphs_test):
    """Second-order by default: the body's meta-gradient flows through the adapted head."""
    grads = {}
    for first_order in (False, True):
        torch.manual_seed(0)
        learner = create_learner("anil", hidden=16, first_order=first_order, inner_steps=2)
        learner.train()
        loss, _ = learner.meta_loss(_tasks(glyphs_test))
        grads[first_order] = torch.autograd.grad(loss, [learner.body.features[0][0].weight])[0]
    assert grads[False].abs().sum() > 0 and grads[True].abs().sum() > 0
    assert not torch.allclose(grads[False], grads[True])


def test_anil_matches_maml_restricted_to_the_head(glyphs_test):
    """The cached-feature inner loop equals MAML's generic loop over the head keys."""
    from playground.algorithms.maml import MAML

    torch.manual_seed(0)
    anil = create_learner("anil", hidden=16, inner_steps=3)
    tasks = _tasks(glyphs_test)
    anil.train()
    loss, _ = anil.meta_loss(tasks)
    g_anil = torch.autograd.grad(loss, [anil.body.features[0][0].weight])[0]
    fast0 = anil.initial_fast_weights(5)
    t = tasks[0]
    generic = MAML.inner_loop(anil, fast0, t.support_x, t.support_y, 3, first_order=False)
    cached = anil.inner_loop(fast0, t.support_x, t.support_y, 3, first_order=False)
    for k in generic:
        assert torch.allclose(generic[k], cached[k], atol=1e-5), k
    assert g_anil.abs().sum() > 0
    anil.eval()


# -- MAML batch norm -----------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["maml", "anil", "metasgd", "reptile"])
def test_per_example_batch_norm_predictions_do_not_depend_on_other_queries(algo, glyphs_test):
    torch.manual_seed(0)
    learner = create_learner(algo, hidden=16, bn="per_example")
    learner.meta_train_step(_tasks(glyphs_test, batch=2))
    t = TaskSampler(glyphs_test, 5, 1, 3, seed=1).sample()
    pred = learner.adapt(t.support_x, t.support_y, n_steps=2)
    batch = pred.logits(t.query_x)
    alone = torch.cat([pred.logits(t.query_x[i : i + 1]) for i in range(len(t.query_x))])
    assert torch.allclose(batch, alone, atol=1e-5)
    other = pred.logits(torch.cat([t.query_x[:2], torch.rand(4, 1, 28, 28)]))[:2]
    assert torch.allclose(batch[:2], other, atol=1e-5)


def test_transductive_batch_norm_does_depend_on_other_queries(glyphs_test):
    """The default (the papers' protocol) normalises with the batch: the check above can fail."""
    torch.manual_seed(0)
    learner = create_learner("maml", hidden=16)
    assert learner.bn == "transductive"
    t = TaskSampler(glyphs_test, 5, 1, 3, seed=1).sample()
    pred = learner.adapt(t.support_x, t.support_y, n_steps=2)
    batch = pred.logits(t.query_x)
    other = pred.logits(torch.cat([t.query_x[:2], torch.rand(4, 1, 28, 28)]))[:2]
    assert not torch.allclose(batch[:2], other, atol=1e-3)


def test_per_example_batch_norm_is_instance_norm_with_the_batch_norm_affine(glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("maml", hidden=16, bn="per_example")
    with torch.no_grad():
        for m in learner.body.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    x = _tasks(glyphs_test).support_x[0]
    h = x
    for block in learner.body.features:
        conv, bn, relu, pool = block
        h = pool(relu(F.instance_norm(conv(h), weight=bn.weight, bias=bn.bias, eps=bn.eps)))
    fast = learner.initial_fast_weights(5)
    with torch.no_grad():
        assert torch.allclose(learner.features_fast(fast, x), h.flatten(1), atol=1e-5)


def test_per_example_maml_vmap_and_loop_agree(glyphs_test):
    torch.manual_seed(0)
    loop = create_learner("maml", hidden=16, bn="per_example", task_batching="loop")
    vm = create_learner("maml", hidden=16, bn="per_example", task_batching="vmap")
    vm.load_state_dict(loop.state_dict())
    tasks = _tasks(glyphs_test)
    out = []
    for learner in (loop, vm):
        learner.train()
        loss, _ = learner.meta_loss(tasks)
        (g,) = torch.autograd.grad(loss, [learner.body.features[0][0].weight])
        out.append((loss.detach(), g))
        learner.eval()
    assert torch.allclose(out[0][0], out[1][0], atol=1e-5)
    assert torch.allclose(out[0][1], out[1][1], atol=1e-4)


def test_bn_mode_is_validated_and_kept_in_the_config(tmp_path):
    with pytest.raises(ValueError, match="bn must be one of"):
        create_learner("maml", bn="batch")
    learner = create_learner("maml", hidden=16, bn="per_example")
    assert learner.config()["bn"] == "per_example"
    assert load_learner(save_checkpoint(tmp_path / "m.pt", learner)).bn == "per_example"
    assert create_learner("maml").config()["bn"] == "transductive"


# -- shared-model safety of the non-default options ----------------------------------------------
@pytest.mark.parametrize(
    "algo, options",
    [
        ("reptile", {"inner_optimizer": "adam", "inner_lr": 0.01, "outer_optimizer": "sgd", "outer_lr": 0.5}),
        ("metasgd", {"head": "per_class", "bn": "per_example"}),
        ("anil", {"bn": "per_example", "first_order": True}),
        ("maml", {"bn": "per_example", "head": "per_class"}),
    ],
)
def test_adapt_is_functional_for_non_default_options(algo, options, glyphs_test):
    torch.manual_seed(0)
    learner = create_learner(algo, hidden=16, **options)
    hooked = []
    learner.meta_train_step(_tasks(glyphs_test, batch=2), grad_hook=lambda m: hooked.append(m.head_weight.grad))
    assert len(hooked) == 1 and hooked[0] is not None
    learner.optimizer.zero_grad(set_to_none=True)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    opt_state = copy.deepcopy(learner.optimizer.state_dict())
    t = TaskSampler(glyphs_test, 3, 2, 2, seed=4).sample()
    for steps, lr in ((None, None), (4, 0.05)):
        pred = learner.adapt(t.support_x, t.support_y, n_steps=steps, inner_lr=lr)
        assert pred.predict_proba(t.query_x).shape == (6, 3)
        assert pred.predict(t.query_x[:1]).shape == (1,)
    after = learner.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in learner.parameters())
    state = learner.optimizer.state_dict()["state"]
    assert state.keys() == opt_state["state"].keys()
    for i, entry in state.items():
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(opt_state["state"][i][k])) for k, v in entry.items())
    assert not learner.training


# -- test-time step size -------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ["maml", "metasgd", "anil", "reptile"])
def test_episode_accuracies_adapt_with_the_step_size_given(algo, glyphs_test):
    """The batched evaluation (`evaluate --inner-lr`) adapts as `adapt(..., inner_lr=...)` does, task by task."""
    from playground.algorithms.base import MetaLearner

    torch.manual_seed(0)
    learner = create_learner(algo, hidden=16, head="per_class").eval()
    tasks = _tasks(glyphs_test, n_query=4, batch=8)
    by_rate = {}
    for lr in (None, 1e-4, 30.0):
        batched = learner.episode_accuracies(tasks, n_steps=3, inner_lr=lr)
        one_by_one = MetaLearner.episode_accuracies(learner, tasks, n_steps=3, inner_lr=lr)
        assert torch.allclose(batched, one_by_one), lr
        by_rate[lr] = batched
    # The rate reaches the inner loop: other rates, other accuracies.
    assert not torch.equal(by_rate[1e-4], by_rate[None]) and not torch.equal(by_rate[30.0], by_rate[None])

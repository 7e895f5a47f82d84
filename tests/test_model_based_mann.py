"""The memory-augmented neural network (MANN, Santoro et al. 2016) with LRUA memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from playground.algorithms import MetaLearner, create_learner
from playground.algorithms import mann as mann_module
from playground.algorithms.mann import LRUAMemory, round_robin_order
from playground.data.episodes import TaskSampler
from playground.evaluation.few_shot import evaluate_few_shot
from playground.zoo.checkpoints import load_learner, save_checkpoint

FAST = {"hidden": 32, "outer_lr": 3e-3}


def _trained(glyphs, iterations: int = 3, **options) -> MetaLearner:
    """A few meta-steps, so batch-norm statistics and optimiser state are non-trivial."""
    torch.manual_seed(0)
    learner = create_learner("mann", **{**FAST, **options})
    sampler = TaskSampler(glyphs, 5, 2, 3, seed=0)
    for _ in range(iterations):
        learner.meta_train_step(sampler.sample_batch(2))
    return learner


@pytest.mark.slow  # a meta-training run
def test_meta_training_lifts_accuracy_far_above_chance(glyphs_train, glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("mann", **FAST)
    before = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    sampler = TaskSampler(glyphs_train, 5, 1, 5, seed=0)
    for _ in range(150):
        stats = learner.meta_train_step(sampler.sample_batch(4))
        assert torch.isfinite(torch.tensor(stats.loss))
    after = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    print(f"mann: {before:.3f} -> {after:.3f}")
    # 5-way chance is 20%; held-out synthetic classes must be well above it and improved.
    assert after >= 0.4, f"mann: {after:.2f} after meta-training"
    assert after >= before + 0.1, f"mann: {before:.2f} -> {after:.2f}"


# -- the LRUA memory -------------------------------------------------------------------------------


def test_lru_write_goes_to_the_least_used_slots_and_erases_them():
    mem = LRUAMemory(slots=6, size=3, heads=2, usage_decay=0.5)
    memory = torch.arange(18.0).view(1, 6, 3)
    usage = torch.tensor([[0.9, 0.2, 0.5, 0.1, 0.8, 0.3]])  # least used: slot 3, then slot 1
    prev_read = F.one_hot(torch.tensor([[0, 4]]), 6).float()
    add = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    lru_gate = torch.full((1, 2), -50.0)  # sigmoid ~ 0: write to the least-used slot
    new, weights = mem.write(memory, usage, prev_read, add, lru_gate)
    assert torch.equal(weights.argmax(-1), torch.tensor([[3, 1]]))  # head i: the i-th least used
    # The old content of those slots is gone (zeroed before the write), the others are untouched.
    assert torch.allclose(new[0, 3], add[0, 0]) and torch.allclose(new[0, 1], add[0, 1])
    untouched = [0, 2, 4, 5]
    assert torch.allclose(new[0, untouched], memory[0, untouched])
    # Gate ~ 1: each head adds to the slot it read last (still erasing the least-used ones).
    new, weights = mem.write(memory, usage, prev_read, add, -lru_gate)
    assert torch.allclose(weights, prev_read)
    assert torch.allclose(new[0, 0], memory[0, 0] + add[0, 0]) and torch.allclose(new[0, 4], memory[0, 4] + add[0, 1])
    assert torch.equal(new[0, 3], torch.zeros(3))
    # A zero scale skips the write and the erasure.
    skipped, weights = mem.write(memory, usage, prev_read, add, lru_gate, scale=torch.zeros(1, 1, 1))
    assert torch.equal(skipped, memory) and not weights.any()


def test_least_used_ties_break_by_slot_index():
    mem = LRUAMemory(slots=5, size=2, heads=3, usage_decay=0.9)
    usage = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0], [0.0] * 5])
    assert torch.equal(mem.least_used(usage).argmax(-1), torch.tensor([[1, 3, 4], [0, 1, 2]]))


def test_usage_decays_and_counts_reads_and_writes():
    mem = LRUAMemory(slots=4, size=2, heads=2, usage_decay=0.5)
    usage = torch.tensor([[1.0, 2.0, 0.0, 4.0]])
    zeros = torch.zeros(1, 2, 4)
    assert torch.allclose(mem.update_usage(usage, zeros, zeros), 0.5 * usage)
    read = torch.tensor([[[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]])
    write = torch.tensor([[[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]])
    assert torch.allclose(mem.update_usage(usage, read, write), torch.tensor([[1.0, 1.5, 1.0, 3.0]]))
    # Unused memories fade: with nothing read or written, usage halves every step.
    for _ in range(3):
        usage = mem.update_usage(usage, zeros, zeros)
    assert torch.allclose(usage, torch.tensor([[1.0, 2.0, 0.0, 4.0]]) / 8)


def test_read_weights_are_a_distribution_that_finds_the_matching_slot():
    torch.manual_seed(0)
    mem = LRUAMemory(slots=8, size=5, heads=3, usage_decay=0.95)
    memory = torch.randn(2, 8, 5)
    memory[:, 6] = 0.0  # an empty slot: cosine similarity 0, still a valid distribution
    key = memory[:, [2, 5, 0]] * 3.0  # cosine similarity ignores the scale
    weights = mem.read(memory, key, torch.full((2, 3), 50.0))
    assert weights.shape == (2, 3, 8)
    assert (weights >= 0).all() and torch.allclose(weights.sum(-1), torch.ones(2, 3))
    assert torch.equal(weights.argmax(-1), torch.tensor([[2, 5, 0], [2, 5, 0]]))
    flat = mem.read(memory, key, torch.ones(2, 3))
    assert torch.allclose(flat.sum(-1), torch.ones(2, 3)) and flat.max() < 0.5  # low strength: spread out


def test_round_robin_order_spreads_each_class_over_the_sequence():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert round_robin_order(labels).tolist() == [0, 2, 4, 1, 3, 5]
    shuffled = torch.tensor([2, 0, 1, 0, 2, 1])
    assert shuffled[round_robin_order(shuffled)].tolist() == [0, 1, 2, 0, 1, 2]
    batched = torch.stack([labels, shuffled])
    assert torch.equal(round_robin_order(batched)[1], round_robin_order(shuffled))


# -- the few-shot interface -----------------------------------------------------------------------


def test_queries_are_independent_of_each_other(glyphs_test):
    learner = _trained(glyphs_test)
    task = TaskSampler(glyphs_test, 5, 1, 3, seed=3).sample()
    pred = learner.adapt(task.support_x, task.support_y)
    together = pred.predict_proba(task.query_x)
    alone = torch.cat([pred.predict_proba(task.query_x[i : i + 1]) for i in range(len(task.query_x))])
    assert torch.allclose(together, alone, atol=1e-5)
    # Adding other images to the batch does not change a query's prediction either.
    more = torch.cat([task.query_x, task.support_x.flip(0)])
    assert torch.allclose(pred.predict_proba(more)[: len(task.query_x)], together, atol=1e-5)
    assert pred.embed(task.query_x).shape == (len(task.query_x), learner.reads * learner.memory_size)


def test_adapt_is_deterministic_and_ignores_how_classes_are_interleaved(glyphs_test):
    learner = _trained(glyphs_test)
    task = TaskSampler(glyphs_test, 4, 2, 2, seed=5).sample()
    a = learner.adapt(task.support_x, task.support_y).logits(task.query_x)
    assert torch.equal(a, learner.adapt(task.support_x, task.support_y).logits(task.query_x))
    # Classes interleaved differently (each class's images in the same order): same sequence.
    perm = torch.tensor([6, 0, 2, 4, 1, 7, 3, 5])
    x, y = task.support_x[perm], task.support_y[perm]
    for c in range(4):
        assert torch.equal(x[y == c], task.support_x[task.support_y == c])
    assert torch.allclose(learner.adapt(x, y).logits(task.query_x), a, atol=1e-6)
    # n_steps / inner_lr are for gradient-based learners: ignored.
    assert torch.equal(learner.adapt(task.support_x, task.support_y, n_steps=9, inner_lr=1.0).logits(task.query_x), a)


def test_meta_training_computes_what_adapt_computes(glyphs_test, monkeypatch):
    """With the training-time order fixed to the round robin, meta_loss is adapt's query loss, batched."""
    learner = _trained(glyphs_test, random_label_slots=False, support_loss_weight=0.0)
    tasks = TaskSampler(glyphs_test, 5, 2, 3, seed=6).sample_batch(3)
    monkeypatch.setattr(
        learner, "sequence_order", lambda y, n, train: type(learner).sequence_order(learner, y, n, False)
    )
    with torch.no_grad():  # eval mode: batch norm uses its running statistics in both
        loss, acc = learner.meta_loss(tasks)
    losses, accs = [], []
    for i in range(len(tasks)):
        t = tasks[i]
        logits = learner.adapt(t.support_x, t.support_y).logits(t.query_x)
        losses.append(F.cross_entropy(logits, t.query_y))
        accs.append((logits.argmax(-1) == t.query_y).float().mean())
    assert torch.allclose(loss, torch.stack(losses).mean(), atol=1e-5)
    assert torch.allclose(acc, torch.stack(accs).mean())


@pytest.mark.parametrize("k_shot", [1, 2])
def test_batched_episode_accuracies_match_one_task_at_a_time(k_shot, glyphs_test):
    learner = _trained(glyphs_test, iterations=10)
    tasks = TaskSampler(glyphs_test, 5, k_shot, 3, seed=4).sample_batch(6)
    batched = learner.episode_accuracies(tasks)
    looped = MetaLearner.episode_accuracies(learner, tasks)
    assert torch.allclose(batched, looped)


def test_chunked_query_steps_give_the_same_accuracies(glyphs_test, monkeypatch):
    learner = _trained(glyphs_test)
    tasks = TaskSampler(glyphs_test, 5, 1, 3, seed=7).sample_batch(5)
    whole = learner.episode_accuracies(tasks)
    monkeypatch.setattr(mann_module, "QUERY_CHUNK", 4)  # 4 query steps per call: one query of each task
    assert torch.equal(learner.episode_accuracies(tasks), whole)


@pytest.mark.parametrize("n_way", [2, 20])
def test_a_five_way_model_serves_2_and_20_way_five_shot_tasks(n_way, glyphs_test):
    learner = _trained(glyphs_test)
    task = TaskSampler(glyphs_test, n_way, 5, 2, seed=n_way).sample()
    pred = learner.adapt(task.support_x, task.support_y)
    assert pred.n_way == n_way
    proba = pred.predict_proba(task.query_x)
    assert proba.shape == (2 * n_way, n_way)
    assert torch.isfinite(proba).all() and torch.allclose(proba.sum(-1), torch.ones(2 * n_way), atol=1e-5)
    assert len(pred.trace) == 1 and 0.0 <= pred.trace[0].accuracy <= 1.0
    assert torch.isfinite(torch.tensor(pred.trace[0].loss))
    tasks = TaskSampler(glyphs_test, n_way, 5, 2, seed=1).sample_batch(2)
    assert learner.episode_accuracies(tasks).shape == (2,)
    # Meta-training on such tasks works too.
    learner.meta_train_step(tasks)


def test_more_ways_than_label_units_is_a_clear_error(glyphs_test):
    learner = create_learner("mann", hidden=16, max_ways=5)
    task = TaskSampler(glyphs_test, 7, 1, 1, seed=0).sample()
    with pytest.raises(ValueError, match="7 classes.*max_ways"):
        learner.adapt(task.support_x, task.support_y)
    with pytest.raises(ValueError, match="max_ways"):
        learner.episode_accuracies(TaskSampler(glyphs_test, 7, 1, 1, seed=0).sample_batch(2))
    with pytest.raises(ValueError, match="max_ways"):
        learner.meta_train_step(TaskSampler(glyphs_test, 7, 1, 1, seed=0).sample_batch(2))
    with pytest.raises(ValueError, match="n_way=10 is more than max_ways=5"):
        create_learner("mann", max_ways=5, n_way=10)


def test_adapt_rejects_bad_support(glyphs_test):
    learner = create_learner("mann", hidden=16)
    task = TaskSampler(glyphs_test, 3, 1, 1, seed=0).sample()
    with pytest.raises(ValueError, match="missing"):
        learner.adapt(task.support_x, torch.tensor([0, 2, 2]))


def test_checkpoint_round_trip_with_non_default_options(tmp_path, glyphs_test):
    options = {
        "hidden": 16,
        "controller_size": 24,
        "memory_slots": 16,
        "memory_size": 8,
        "reads": 2,
        "usage_decay": 0.9,
        "max_ways": 8,
        "support_loss_weight": 0.25,
        "random_label_slots": False,
    }
    torch.manual_seed(0)
    learner = create_learner("mann", **options)
    sampler = TaskSampler(glyphs_test, 5, 2, 2, seed=0)
    learner.meta_train_step(sampler.sample_batch(2))
    loaded = load_learner(save_checkpoint(tmp_path / "m.pt", learner))
    assert loaded.config() == learner.config()
    for key, value in options.items():
        assert getattr(loaded, key) == value
    task = sampler.sample()
    a = learner.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    b = loaded.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    assert torch.equal(a, b)


def test_support_loss_counts_only_classes_seen_before_in_the_sequence(glyphs_test):
    """One-shot: no support image can be recalled, so the weight changes nothing; two-shot: it does."""
    torch.manual_seed(0)
    plain = create_learner("mann", hidden=16, support_loss_weight=0.0)
    weighted = create_learner("mann", hidden=16, support_loss_weight=1.0)
    weighted.load_state_dict(plain.state_dict())
    for k_shot, same in ((1, True), (2, False)):
        tasks = TaskSampler(glyphs_test, 5, k_shot, 2, seed=8).sample_batch(2)
        losses = []
        for learner in (plain, weighted):
            torch.manual_seed(1)  # the same random support order and label units
            with torch.no_grad():
                losses.append(learner.meta_loss(tasks)[0])
        assert torch.equal(losses[0], losses[1]) == same


def test_a_sequence_stores_one_binding_per_head_and_step():
    """With the gate closed, each step after the first writes each head's binding to a fresh slot."""
    torch.manual_seed(0)
    learner = create_learner("mann", hidden=8, controller_size=16, memory_slots=32, memory_size=6, reads=3)
    with torch.no_grad():
        learner.write_params.bias.view(3, 7)[:, -1] = -1e4  # always the least-used slot
        zs = torch.randn(1, 5, 8)
        _, state = learner.run_support(zs, torch.tensor([[0, 1, 2, 3, 4]]))
    written = state.memory[0].norm(dim=-1) > 0
    assert int(written.sum()) == 4 * 3  # steps 2..5 bind the previous image, 3 heads each: all distinct slots

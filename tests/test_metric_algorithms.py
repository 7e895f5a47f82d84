"""Metric-based learners: Matching Networks, Relation Networks, Siamese networks, soft k-means ProtoNet."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from playground.algorithms import MetaLearner, create_learner
from playground.data.episodes import TaskSampler
from playground.evaluation.few_shot import evaluate_few_shot
from playground.zoo.checkpoints import load_learner, save_checkpoint

FAST = {"hidden": 32, "outer_lr": 3e-3}
# name -> (algorithm, options, meta-training iterations)
RUNS = {
    "matching": ("matching", {}, 40),
    "matching-fce": ("matching", {"fce": True}, 40),
    "relation": ("relation", {}, 40),
    "relation-unpadded": ("relation", {"unpadded_blocks": 2}, 40),
    "siamese": ("siamese", {}, 40),
    "protonet-softkmeans": ("protonet-softkmeans", {}, 40),
}


def _make(name: str, **extra) -> MetaLearner:
    algo, opts, _ = RUNS[name]
    return create_learner(algo, **{**FAST, **opts, **extra})


def _trained(name: str, glyphs, iterations: int = 3) -> MetaLearner:
    """A few meta-steps, so batch-norm statistics and optimiser state are non-trivial."""
    torch.manual_seed(0)
    learner = _make(name)
    sampler = TaskSampler(glyphs, 5, 2, 3, seed=0)
    for _ in range(iterations):
        learner.meta_train_step(sampler.sample_batch(2))
    return learner


def _optimizer_tensors(learner: MetaLearner) -> list[torch.Tensor]:
    return [v.clone() for state in learner.optimizer.state.values() for v in state.values() if torch.is_tensor(v)]


@pytest.mark.parametrize("name", list(RUNS))
def test_meta_training_lifts_accuracy_far_above_chance(name, glyphs_train, glyphs_test):
    torch.manual_seed(0)
    learner = _make(name)
    before = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    sampler = TaskSampler(glyphs_train, 5, 1, 5, seed=0)
    for _ in range(RUNS[name][2]):
        stats = learner.meta_train_step(sampler.sample_batch(4))
        assert torch.isfinite(torch.tensor(stats.loss))
    after = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    print(f"{name}: {before:.3f} -> {after:.3f}")
    assert after >= 0.4, f"{name}: {after:.2f} after meta-training"
    assert after >= before + 0.1, f"{name}: {before:.2f} -> {after:.2f}"


# -- the interface, for every variant (the generic tests build each algorithm with defaults) --


@pytest.mark.parametrize("name", list(RUNS))
def test_adapt_is_read_only_and_handles_any_task(name, glyphs_test):
    learner = _trained(name, glyphs_test)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    opt_before = _optimizer_tensors(learner)
    for n_way, k_shot in ((2, 1), (5, 3), (7, 2)):
        task = TaskSampler(glyphs_test, n_way, k_shot, 2, seed=n_way).sample()
        pred = learner.adapt(task.support_x, task.support_y, n_steps=5, inner_lr=0.1)
        assert pred.n_way == n_way
        proba = pred.predict_proba(task.query_x)
        assert proba.shape == (n_way * 2, n_way)
        assert torch.isfinite(proba).all()
        assert torch.allclose(proba.sum(-1), torch.ones(len(proba)), atol=1e-5)
        lone = pred.predict_proba(task.query_x[:1])
        assert lone.shape == (1, n_way) and torch.isfinite(lone).all()
        assert pred.embed(task.query_x).shape[0] == n_way * 2
        assert len(pred.trace) == 1
        assert all(torch.isfinite(torch.tensor([r.loss, r.accuracy])).all() for r in pred.trace)
    after = learner.state_dict()
    for k in before:
        assert torch.equal(before[k], after[k]), f"adapt changed {k}"
    opt_after = _optimizer_tensors(learner)
    assert len(opt_after) == len(opt_before) > 0
    assert all(torch.equal(a, b) for a, b in zip(opt_before, opt_after)), "adapt changed the optimizer state"
    assert not learner.training


@pytest.mark.parametrize("name", [n for n in RUNS if n != "protonet-softkmeans"])
def test_a_prediction_does_not_depend_on_the_other_images(name, glyphs_test):
    """Eval-mode batch norm uses running statistics: an image alone gets the same prediction."""
    learner = _trained(name, glyphs_test)
    task = TaskSampler(glyphs_test, 5, 1, 3, seed=3).sample()
    pred = learner.adapt(task.support_x, task.support_y)
    together = pred.predict_proba(task.query_x)
    alone = torch.cat([pred.predict_proba(task.query_x[i : i + 1]) for i in range(len(task.query_x))])
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("name", list(RUNS))
def test_batched_episode_accuracies_match_one_task_at_a_time(name, glyphs_test):
    learner = _trained(name, glyphs_test)
    tasks = TaskSampler(glyphs_test, 5, 2, 3, seed=4).sample_batch(4)
    batched = learner.episode_accuracies(tasks)
    looped = MetaLearner.episode_accuracies(learner, tasks)
    assert torch.allclose(batched, looped)


@pytest.mark.parametrize("name, constant", [("relation", "EVAL_PAIRS"), ("siamese", "EVAL_PAIR_ELEMENTS")])
def test_chunked_evaluation_gives_the_same_accuracies(name, constant, glyphs_test, monkeypatch):
    learner = _trained(name, glyphs_test)
    tasks = TaskSampler(glyphs_test, 5, 2, 3, seed=4).sample_batch(5)
    whole = learner.episode_accuracies(tasks)
    module = importlib.import_module(type(learner).__module__)
    monkeypatch.setattr(module, constant, 1)  # one task per step
    assert torch.allclose(learner.episode_accuracies(tasks), whole)


@pytest.mark.parametrize(
    "algo, options",
    [("matching", {"fce": True, "process_steps": 2, "scale": 5.0}), ("protonet-softkmeans", {"refine_steps": 3})],
)
def test_checkpoint_round_trip_with_non_default_options(algo, options, tmp_path, glyphs_test):
    torch.manual_seed(0)
    learner = create_learner(algo, hidden=16, **options)
    sampler = TaskSampler(glyphs_test, 5, 1, 2, seed=0)
    learner.meta_train_step(sampler.sample_batch(2))
    loaded = load_learner(save_checkpoint(tmp_path / "m.pt", learner))
    assert loaded.config() == learner.config()
    for key, value in options.items():
        assert getattr(loaded, key) == value
    task = sampler.sample()
    a = learner.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    b = loaded.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    assert torch.equal(a, b)


# -- Matching Networks ---------------------------------------------------------------------------


@pytest.mark.parametrize("fce", [False, True])
def test_matching_attention_is_a_distribution_over_the_support(fce, glyphs_test):
    learner = _trained("matching-fce" if fce else "matching", glyphs_test)
    task = TaskSampler(glyphs_test, 4, 3, 2, seed=5).sample()
    pred = learner.adapt(task.support_x, task.support_y)
    attn = pred.attention(task.query_x)
    assert attn.shape == (8, 12)
    assert (attn >= 0).all()
    assert torch.allclose(attn.sum(-1), torch.ones(8), atol=1e-5)
    # The class probabilities are the attention summed over each class's support images.
    per_class = attn @ F.one_hot(task.support_y, 4).float()
    assert torch.allclose(pred.predict_proba(task.query_x), per_class, atol=1e-5)
    assert pred.attention(task.query_x[:1]).shape == (1, 12)


def test_matching_full_context_embeddings_use_the_support_set(glyphs_test):
    learner = _trained("matching-fce", glyphs_test)
    task = TaskSampler(glyphs_test, 5, 1, 1, seed=6).sample()
    z = learner.encoder(task.support_x)
    g = learner.support_embeddings(z)
    # The bidirectional LSTM sees the whole support set: changing one image changes the others' g.
    z2 = z.clone()
    z2[0] = z[1]
    assert not torch.allclose(learner.support_embeddings(z2)[2:], g[2:])
    # The query embedding f(x) depends on the support set it attends to, but not on its order.
    zq = learner.encoder(task.query_x)
    f = learner.query_embeddings(zq, g)
    assert not torch.allclose(f, learner.query_embeddings(zq, g[1:]))
    assert torch.allclose(f, learner.query_embeddings(zq, g.flip(0)), atol=1e-5)
    plain = _make("matching")
    assert torch.equal(plain.support_embeddings(z), z) and torch.equal(plain.query_embeddings(zq, g), zq)


# -- soft k-means ProtoNet -----------------------------------------------------------------------


def test_softkmeans_with_no_refinement_is_protonet(glyphs_test):
    torch.manual_seed(0)
    skm = create_learner("protonet-softkmeans", refine_steps=0, **FAST)
    proto = create_learner("protonet", **FAST)
    proto.load_state_dict(skm.state_dict())
    task = TaskSampler(glyphs_test, 5, 2, 3, seed=7).sample()
    a = skm.adapt(task.support_x, task.support_y).logits(task.query_x)
    b = proto.adapt(task.support_x, task.support_y).logits(task.query_x)
    assert torch.allclose(a, b, atol=1e-5)
    tasks = TaskSampler(glyphs_test, 5, 1, 3, seed=8).sample_batch(3)
    assert torch.equal(skm.episode_accuracies(tasks), proto.episode_accuracies(tasks))


def test_softkmeans_refinement_moves_prototypes_toward_the_queries(glyphs_test):
    learner = _trained("protonet-softkmeans", glyphs_test)
    task = TaskSampler(glyphs_test, 5, 1, 3, seed=9).sample()
    pred = learner.adapt(task.support_x, task.support_y)
    assert learner.refine_steps >= 1
    # Unlabeled images that are all one drawing: every prototype moves toward its embedding.
    x = task.query_x[:1].expand(6, -1, -1, -1)
    z = pred.embed(x[:1])
    refined = pred.refined_prototypes(x)
    assert refined.shape == pred.prototypes.shape
    closer = (pred.prototypes - z).norm(dim=-1) - (refined - z).norm(dim=-1)
    # Far prototypes may get a vanishing share of the images; the nearest one must move.
    assert (closer >= -1e-5).all() and closer[torch.cdist(z, pred.prototypes).argmin()] > 0
    # Transductive: the predictions use the refined prototypes, which depend on the images given.
    assert torch.allclose(pred.logits(x), -torch.cdist(pred.embed(x), refined).pow(2), atol=1e-4)
    assert not torch.allclose(pred.refined_prototypes(task.query_x), refined)
    # With no steps, the prototypes are the support means.
    learner.refine_steps = 0
    assert torch.allclose(pred.refined_prototypes(x), pred.prototypes)


def test_softkmeans_ignores_the_gradient_learners_step_count(glyphs_test):
    learner = _trained("protonet-softkmeans", glyphs_test)
    task = TaskSampler(glyphs_test, 5, 1, 3, seed=10).sample()
    a = learner.adapt(task.support_x, task.support_y, n_steps=0).logits(task.query_x)
    b = learner.adapt(task.support_x, task.support_y, n_steps=20).logits(task.query_x)
    assert torch.equal(a, b)


# -- Siamese networks ----------------------------------------------------------------------------


def test_siamese_verification_is_symmetric(glyphs_test):
    learner = _trained("siamese", glyphs_test)
    task = TaskSampler(glyphs_test, 5, 2, 3, seed=11).sample()
    a, b = task.support_x, task.query_x[: len(task.support_x)]
    ab, ba = learner.verify(a, b), learner.verify(b, a)
    assert ab.shape == (len(a),)
    assert torch.allclose(ab, ba, atol=1e-6)
    assert ((ab > 0) & (ab < 1)).all()
    pred = learner.adapt(task.support_x, task.support_y)
    # Pairwise scores against the support set agree with the pair-by-pair verification.
    pairs = pred.verification(b)
    assert torch.allclose(pairs.diagonal(), ab, atol=1e-5)


def test_siamese_classifies_by_the_best_matching_support_image(glyphs_test):
    learner = _trained("siamese", glyphs_test)
    task = TaskSampler(glyphs_test, 4, 3, 2, seed=12).sample()
    pred = learner.adapt(task.support_x, task.support_y)
    scores = pred.verification(task.query_x)  # [8, 12]
    best = torch.stack([scores[:, task.support_y == c].amax(-1) for c in range(4)], -1)
    assert torch.allclose(pred.logits(task.query_x).sigmoid(), best, atol=1e-5)
    assert torch.equal(pred.predict(task.query_x), best.argmax(-1))


def test_siamese_pairs_are_balanced_and_one_shot_traces_are_finite(glyphs_test):
    from playground.algorithms.siamese import balanced_bce

    same = torch.tensor([[True, False, False, False]])
    mask = torch.ones_like(same)
    logits = torch.tensor([[0.0, 5.0, 5.0, 5.0]])
    # One positive at log 2 and three bad negatives: the positive counts as much as all negatives.
    expected = 0.5 * F.softplus(torch.tensor(0.0)) + 0.5 * F.softplus(torch.tensor(5.0))
    assert torch.allclose(balanced_bce(logits, same, mask), expected)
    learner = _trained("siamese", glyphs_test)
    task = TaskSampler(glyphs_test, 5, 1, 1, seed=13).sample()  # one shot: no same-class support pair
    trace = learner.adapt(task.support_x, task.support_y).trace
    assert torch.isfinite(torch.tensor(trace[0].loss))


# -- Relation Networks ---------------------------------------------------------------------------


def test_relation_probabilities_are_the_normalised_relation_scores(glyphs_test):
    learner = _trained("relation", glyphs_test)
    task = TaskSampler(glyphs_test, 5, 2, 2, seed=14).sample()
    pred = learner.adapt(task.support_x, task.support_y)
    scores = pred.relation_scores(task.query_x)
    assert scores.shape == (10, 5) and ((scores > 0) & (scores < 1)).all()
    assert torch.allclose(pred.predict_proba(task.query_x), scores / scores.sum(-1, keepdim=True), atol=1e-5)
    assert torch.equal(pred.predict(task.query_x), scores.argmax(-1))


def test_relation_class_map_is_the_mean_over_shots(glyphs_test):
    """Repeating every support image K times gives the same class maps, whatever K."""
    learner = _trained("relation", glyphs_test)
    task = TaskSampler(glyphs_test, 5, 1, 2, seed=15).sample()
    one = learner.adapt(task.support_x, task.support_y)
    three = learner.adapt(task.support_x.repeat(3, 1, 1, 1), task.support_y.repeat(3))
    assert one.class_maps.shape[-2:] == (7, 7)
    assert torch.allclose(one.class_maps, three.class_maps, atol=1e-5)
    assert torch.allclose(one.predict_proba(task.query_x), three.predict_proba(task.query_x), atol=1e-5)


def test_relation_unpadded_encoder_gives_the_papers_5x5_maps_and_survives_a_checkpoint(glyphs_test, tmp_path):
    learner = _make("relation-unpadded")
    task = TaskSampler(glyphs_test, 5, 1, 2, seed=16).sample()
    assert learner.adapt(task.support_x, task.support_y).class_maps.shape[-2:] == (5, 5)
    save_checkpoint(tmp_path / "r.pt", learner)
    loaded = load_learner(tmp_path / "r.pt")
    assert loaded.config()["unpadded_blocks"] == 2
    assert torch.equal(
        loaded.adapt(task.support_x, task.support_y).predict_proba(task.query_x),
        learner.adapt(task.support_x, task.support_y).predict_proba(task.query_x),
    )
    with pytest.raises(ValueError, match="unpadded_blocks must be 0, 1 or 2"):
        create_learner("relation", unpadded_blocks=3)

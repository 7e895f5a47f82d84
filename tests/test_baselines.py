from __future__ import annotations

import math

import pytest
import torch

from playground.algorithms import create_learner
from playground.data.episodes import TaskSampler
from playground.evaluation.few_shot import evaluate_few_shot
from playground.zoo.checkpoints import load_learner, read_checkpoint, save_checkpoint


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


# -- scratch: a Conv-4 trained from a random initialisation on the support set alone ----------------


@pytest.mark.slow  # 40 episodes of 50 Adam steps on a full-size Conv-4
def test_scratch_is_clearly_above_chance_with_default_settings(glyphs_test):
    acc = evaluate_few_shot(create_learner("scratch"), glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    assert acc >= 0.4  # 5-way chance is 0.2


def test_scratch_trains_copies_of_a_stored_seeded_init(glyphs_test):
    state = torch.get_rng_state()
    learner = create_learner("scratch", hidden=16, init_seed=3)
    assert torch.equal(torch.get_rng_state(), state), "building the learner must not consume the global RNG"
    twin, other = create_learner("scratch", hidden=16, init_seed=3), create_learner("scratch", hidden=16, init_seed=4)
    w = learner.body.features[0][0].weight
    assert torch.equal(w, twin.body.features[0][0].weight) and not torch.equal(w, other.body.features[0][0].weight)
    before = {k: v.clone() for k, v in learner.state_dict().items()}
    task = TaskSampler(glyphs_test, 5, 2, 3, seed=0).sample()
    learner.adapt(task.support_x, task.support_y, n_steps=10, inner_lr=0.05).predict(task.query_x)
    assert all(torch.equal(before[k], v) for k, v in learner.state_dict().items())
    assert not any(p.requires_grad for p in learner.parameters())  # nothing to meta-learn


def test_scratch_honours_steps_and_learning_rate_and_more_steps_fit_the_support_better(glyphs_test):
    learner = create_learner("scratch", hidden=16)
    task = TaskSampler(glyphs_test, 5, 1, 3, seed=2).sample()
    short = learner.adapt(task.support_x, task.support_y, n_steps=3)
    long = learner.adapt(task.support_x, task.support_y, n_steps=30)
    assert [r.step for r in short.trace] == [0, 1, 2, 3] and len(long.trace) == 31
    # Every run starts from the same init with a zero head: uniform scores, loss log(5).
    assert abs(short.trace[0].loss - math.log(5)) < 1e-5 and long.trace[0].loss == short.trace[0].loss
    assert long.trace[-1].loss < short.trace[-1].loss
    assert long.trace[-1].accuracy == 1.0
    slow = learner.adapt(task.support_x, task.support_y, n_steps=3, inner_lr=1e-6)
    assert abs(slow.trace[-1].loss - math.log(5)) < 1e-3 < short.trace[0].loss - short.trace[-1].loss
    untrained = learner.adapt(task.support_x, task.support_y, n_steps=0).predict_proba(task.query_x)
    assert torch.allclose(untrained, torch.full_like(untrained, 0.2))
    with pytest.raises(ValueError, match="inner_lr"):
        learner.adapt(task.support_x, task.support_y, inner_lr=0.0)


def test_scratch_predicts_each_query_alone_with_the_support_statistics(glyphs_test):
    learner = create_learner("scratch", hidden=16)
    task = TaskSampler(glyphs_test, 4, 2, 3, seed=1).sample()
    pred = learner.adapt(task.support_x, task.support_y, n_steps=10)
    together = pred.logits(task.query_x)
    alone = torch.cat([pred.logits(task.query_x[i : i + 1]) for i in range(len(task.query_x))])
    assert torch.allclose(together, alone, atol=1e-5)
    # The final support accuracy in the trace is the predictor's own accuracy on the support set.
    assert pred.trace[-1].accuracy == float((pred.predict(task.support_x) == task.support_y).float().mean())


# -- pretrained: an ordinary classifier over all training classes, then a head on its features -----


@pytest.fixture(scope="module")
def pretrained(glyphs_train, glyphs_test):
    """A short pretraining run on the synthetic training classes (a few seconds), with before/after accuracy."""
    torch.manual_seed(0)
    learner = create_learner("pretrained", hidden=32)  # default optimizer: SGD at 0.1
    before = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    learner.prepare_training(glyphs_train)
    assert learner.n_classes == glyphs_train.num_classes and learner.class_names == glyphs_train.names
    sampler = TaskSampler(glyphs_train, 16, 1, 5, seed=0)  # 2 x 16 classes x 6 images per step
    for _ in range(40):
        stats = learner.meta_train_step(sampler.sample_batch(2))
        assert math.isfinite(stats.loss)
    assert learner.n_classes == glyphs_train.num_classes  # prepared: the classifier never grew
    after = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    return learner, before, after


def test_pretraining_really_learns_features_that_transfer_to_new_classes(pretrained):
    _, before, after = pretrained
    assert after >= 0.4, f"{after:.2f} after pretraining"
    assert after >= before + 0.1, f"{before:.2f} -> {after:.2f}"


def test_centroid_head_picks_the_nearest_normalised_centroid(pretrained, glyphs_train, glyphs_test):
    learner, _, _ = pretrained
    task = TaskSampler(glyphs_test, 5, 3, 4, seed=3).sample()
    with torch.no_grad():
        # By hand: features in eval mode, centred by the mean training feature, L2-normalised.
        def norm(x):
            z = learner.body(x) - learner.feature_mean
            return z / z.norm(dim=-1, keepdim=True)

        zs, zq = norm(task.support_x), norm(task.query_x)
        centroids = torch.stack([zs[task.support_y == c].mean(0) for c in range(5)])
        expected = ((zq[:, None] - centroids[None]) ** 2).sum(-1).argmin(-1)
        # The centring mean is the mean feature of the training images (a running mean of them).
        train_mean = learner.body(glyphs_train.images[:, :5].flatten(0, 1)[:, None].float() / 255).mean(0)
    assert torch.nn.functional.cosine_similarity(learner.feature_mean, train_mean, dim=0) > 0.95
    pred = learner.adapt(task.support_x, task.support_y)
    assert torch.equal(pred.predict(task.query_x), expected)
    assert len(pred.trace) == 1
    tasks = TaskSampler(glyphs_test, 5, 1, 3, seed=4).sample_batch(6)
    one_by_one = [
        (learner.adapt(t.support_x, t.support_y).predict(t.query_x) == t.query_y).float().mean() for t in tasks
    ]
    assert torch.equal(learner.episode_accuracies(tasks), torch.stack(one_by_one))


def test_linear_head_fits_the_support_features_and_records_its_steps(pretrained, glyphs_test):
    trained, _, centroid_acc = pretrained
    learner = create_learner("pretrained", **{**trained.config(), "head": "linear"})
    learner.load_state_dict(trained.state_dict())
    task = TaskSampler(glyphs_test, 5, 2, 3, seed=5).sample()
    pred = learner.adapt(task.support_x, task.support_y, n_steps=20)
    assert [r.step for r in pred.trace] == list(range(21))
    assert abs(pred.trace[0].loss - math.log(5)) < 1e-5  # zero-initialised head
    assert pred.trace[-1].loss < pred.trace[0].loss and pred.trace[-1].accuracy == 1.0
    assert learner.adapt(task.support_x, task.support_y, n_steps=20, inner_lr=0.1).trace[-1].loss > pred.trace[-1].loss
    assert [o.name for o in learner.adapt_options()] == ["n_steps", "inner_lr"] and trained.adapt_options() == []
    tasks = TaskSampler(glyphs_test, 5, 1, 3, seed=4).sample_batch(4)
    one_by_one = [
        (learner.adapt(t.support_x, t.support_y).predict(t.query_x) == t.query_y).float().mean() for t in tasks
    ]
    assert torch.allclose(learner.episode_accuracies(tasks), torch.stack(one_by_one))
    acc = evaluate_few_shot(learner, glyphs_test, 5, 1, 5, episodes=40, seed=0).mean
    assert acc >= 0.4 and acc >= centroid_acc - 0.1


def test_pretrained_vocabulary_survives_a_checkpoint_round_trip(pretrained, glyphs_train, glyphs_test, tmp_path):
    learner, _, _ = pretrained
    loaded = load_learner(save_checkpoint(tmp_path / "pre.pt", learner))
    assert loaded.config()["n_classes"] == 48 and loaded.class_names == learner.class_names
    assert loaded.classifier_weight.shape == (48, 32)
    assert torch.equal(loaded.feature_mean, learner.feature_mean)
    batch = TaskSampler(glyphs_train, 8, 1, 2, seed=9).sample_batch(2)
    for a, b in zip(learner.class_indices(batch), loaded.class_indices(batch)):
        assert torch.equal(a, b)
    task = TaskSampler(glyphs_test, 5, 1, 3, seed=0).sample()
    a = learner.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    assert torch.equal(a, loaded.adapt(task.support_x, task.support_y).predict_proba(task.query_x))


def test_pretrained_without_prepare_grows_its_vocabulary_keeping_what_it_learned(glyphs_test):
    torch.manual_seed(0)
    learner = create_learner("pretrained", hidden=8)
    sampler = TaskSampler(glyphs_test, 5, 1, 2, seed=0)
    first = sampler.sample_batch(2)
    learner.meta_train_step(first)
    seen = list(dict.fromkeys(n for names in first.class_names for n in names))
    assert learner.class_names == seen and learner.n_classes == len(seen)
    rows = learner.classifier_weight.detach().clone()
    learner.meta_train_step(sampler.sample_batch(2))
    assert learner.n_classes > len(seen)
    # The optimizer works on the grown layer and kept its momentum, padded for the new rows.
    assert any(p is learner.classifier_weight for g in learner.optimizer.param_groups for p in g["params"])
    assert (
        learner.optimizer.state[learner.classifier_weight]["momentum_buffer"].shape == learner.classifier_weight.shape
    )
    assert not torch.equal(rows, learner.classifier_weight[: len(seen)].detach())  # the old rows kept training


def test_train_calls_prepare_training_once_for_a_fresh_learner(glyphs_train, glyphs_test, tmp_path, monkeypatch):
    from playground.algorithms import learner_class
    from playground.data.protocols import Splits
    from playground.training import TrainConfig, train

    monkeypatch.setattr(
        "playground.training.prepare.load_splits",
        lambda *a, **k: Splits("lake", glyphs_train, glyphs_test, glyphs_test),
    )
    calls = []
    cls = learner_class("pretrained")
    original = cls.prepare_training
    monkeypatch.setattr(cls, "prepare_training", lambda self, ds: calls.append(ds.num_classes) or original(self, ds))
    cfg = TrainConfig(
        algorithm="pretrained",
        ways=5,
        shots=1,
        query=2,
        train_ways=8,
        meta_batch=2,
        iterations=2,
        val_every=2,
        val_episodes=4,
        device="cpu",
        out=str(tmp_path),
        learner={"hidden": 8},
    )
    train(cfg, echo=lambda *_: None)
    assert calls == [48]
    saved = load_learner(tmp_path / "last.pt")
    # All 48 classes in the training set's order: prepare_training's doing, not names met on the way.
    assert saved.class_names == glyphs_train.names and saved.config()["n_classes"] == 48
    cfg.iterations = 4
    train(cfg, resume=tmp_path / "last.pt", echo=lambda *_: None)
    assert calls == [48], "a resumed run restores its vocabulary from the checkpoint"
    resumed = load_learner(tmp_path / "last.pt")
    assert resumed.class_names == glyphs_train.names
    assert read_checkpoint(tmp_path / "last.pt").training["iteration"] == 4

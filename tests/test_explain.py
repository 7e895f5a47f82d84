"""The explorer's and compare page's library: projections, embedding views, decision matrices,
adaptation steps, confusion matrices, leave-one-out and identical benchmark episodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from playground.algorithms import create_learner
from playground.data.episodes import TaskSampler
from playground.evaluation.compare import (
    benchmark_episodes,
    compare_on_benchmark,
    leave_one_out,
    score_on_episodes,
    score_on_task,
    shot_curve,
    step_curve,
)
from playground.interactive.explain import adaptation_steps, confusion_matrix, decision_matrices, embedding_view
from playground.interactive.projection import CACHE, project_2d, tsne_perplexity


@pytest.fixture(scope="module")
def trained(glyphs_train):
    """Small ProtoNet, Matching and MAML learners after a few meta-steps (enough to be non-trivial)."""
    torch.manual_seed(0)
    learners = {
        "protonet": create_learner("protonet", hidden=32, outer_lr=3e-3),
        "matching": create_learner("matching", hidden=32, outer_lr=3e-3),
        "maml": create_learner("maml", hidden=32, outer_lr=3e-3, inner_lr=0.4, test_inner_steps=3),
    }
    sampler = TaskSampler(glyphs_train, 5, 1, 5, seed=0)
    for learner in learners.values():
        for _ in range(15):
            learner.meta_train_step(sampler.sample_batch(4))
    return learners


@pytest.fixture(scope="module")
def task(glyphs_test):
    t = TaskSampler(glyphs_test, 4, 3, 3, seed=5).sample()
    return t.support_x, t.support_y, t.query_x, t.query_y


# -- projections -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 12, 40])
@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_projection_works_for_any_point_count_and_says_what_it_did(n, method):
    points = np.random.default_rng(n).normal(size=(n, 16))
    proj = project_2d(points, method)
    assert proj.coords.shape == (n, 2)
    assert np.isfinite(proj.coords).all()
    assert proj.note
    if n == 1:
        assert proj.method == "none"
    elif method == "tsne" and n < 4:
        assert proj.method == "pca" and "t-SNE needs at least 4 points" in proj.note
    else:
        assert proj.method == method
    if method == "tsne" and n >= 4:
        assert f"perplexity {tsne_perplexity(n):.3g}" in proj.note
        assert ("clamped" in proj.note) == (n < 91)


def test_projection_keeps_separate_clusters_separate():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 0.1, (10, 8)), rng.normal(5, 0.1, (10, 8))
    for method in ("pca", "tsne"):
        c = project_2d(np.concatenate([a, b]), method, seed=1).coords
        within = max(
            np.linalg.norm(c[:10] - c[:10].mean(0), axis=1).max(), np.linalg.norm(c[10:] - c[10:].mean(0), axis=1).max()
        )
        between = np.linalg.norm(c[:10].mean(0) - c[10:].mean(0))
        assert between > 2 * within, method


def test_tsne_is_cached_by_content():
    points = np.random.default_rng(7).normal(size=(20, 5))
    hits = CACHE.hits
    first = project_2d(points, "tsne", seed=3)
    again = project_2d(points.copy(), "tsne", seed=3)
    assert CACHE.hits == hits + 1 and again is first
    other = project_2d(points + 1e-3, "tsne", seed=3)
    assert other is not first and CACHE.hits == hits + 1


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros(5), np.array([[np.nan, 1.0], [0.0, 1.0]])])
def test_projection_rejects_bad_points_clearly(bad):
    with pytest.raises(ValueError, match="points"):
        project_2d(bad)
    with pytest.raises(ValueError, match="method"):
        project_2d(np.zeros((3, 2)), "umap")


# -- embedding views ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["protonet", "matching", "maml"])
def test_embedding_view_marks_every_point_and_links_queries_to_prototypes(name, trained, task, glyphs_test):
    sx, sy, qx, qy = task
    distractors = TaskSampler(glyphs_test, 3, 1, 1, seed=9).sample().support_x
    names = ["a", "b", "c", "d"]
    view = embedding_view(trained[name], sx, sy, qx, names, qy.tolist(), distractors, method="pca")
    n = len(sx) + len(qx) + len(distractors) + 4
    assert view.coords.shape == (n, 2) and len(view.kind) == len(view.label) == len(view.images) == n
    assert view.kind.count("prototype") == 4 and view.kind.count("distractor") == 3
    assert [view.label[i] for i in view.indices("support")] == sy.tolist()
    assert [view.label[i] for i in view.indices("prototype")] == [0, 1, 2, 3]
    queries = view.indices("query")
    predicted = trained[name].adapt(sx, sy).predict(qx).tolist()
    assert [view.predicted[i] for i in queries] == predicted
    assert view.misclassified == [i for i in queries if view.label[i] != view.predicted[i]]
    assert all(view.images[i].shape == (28, 28) and view.images[i].dtype == np.uint8 for i in queries)
    if name == "protonet":  # its decision is the nearest prototype, exactly
        assert [view.nearest_prototype[i] for i in queries] == predicted


def test_embedding_view_works_for_a_two_way_one_shot_task(trained, glyphs_test):
    t = TaskSampler(glyphs_test, 2, 1, 1, seed=2).sample()
    view = embedding_view(trained["protonet"], t.support_x, t.support_y, t.query_x[:1], ["x", "y"], method="tsne")
    # 2 support + 1 query + 2 prototypes: t-SNE runs, with its perplexity clamped to what 5 points allow
    assert view.coords.shape == (5, 2) and "t-SNE" in view.note and "clamped" in view.note
    assert np.isfinite(view.coords).all()


def test_pixel_nearest_neighbour_is_shown_in_pixel_space(task):
    sx, sy, qx, _ = task
    learner = create_learner("pixel-nn")
    view = embedding_view(learner, sx, sy, qx, list("abcd"), method="pca")  # raw pixels are its embedding
    assert view.dim == 28 * 28


# -- decisions ---------------------------------------------------------------------------------------


def test_matching_attention_rows_sum_to_one_and_give_its_probabilities(trained, task):
    sx, sy, qx, _ = task
    mats = {m.title: m for m in decision_matrices(trained["matching"], sx, sy, qx)}
    attention = mats["attention on each support image"]
    assert attention.values.shape == (len(qx), len(sx)) and attention.columns == "support"
    assert torch.allclose(attention.values.sum(-1), torch.ones(len(qx)), atol=1e-5)
    # Matching's class probability is the attention summed over each class's support images.
    per_class = torch.zeros(len(qx), 4).index_add_(1, sy, attention.values)
    assert torch.allclose(per_class, mats["class probabilities"].values, atol=1e-5)


def test_protonet_distances_decide_its_probabilities(trained, task):
    sx, sy, qx, _ = task
    mats = {m.title: m for m in decision_matrices(trained["protonet"], sx, sy, qx)}
    distances, proba = mats["squared distance to each prototype"].values, mats["class probabilities"].values
    assert distances.shape == proba.shape == (len(qx), 4)
    assert torch.allclose((-distances).softmax(-1), proba, atol=1e-5)
    assert torch.allclose(proba.sum(-1), torch.ones(len(qx)), atol=1e-5)


def test_every_model_gives_class_probabilities(trained, task):
    sx, sy, qx, _ = task
    for learner in trained.values():
        (first, *_) = decision_matrices(learner, sx, sy, qx)
        assert first.title == "class probabilities" and first.values.shape == (len(qx), 4)


# -- adaptation steps --------------------------------------------------------------------------------


def test_maml_adaptation_steps_match_adapting_with_that_many_steps(trained, task):
    sx, sy, qx, qy = task
    maml = trained["maml"]
    before = [p.detach().clone() for p in maml.parameters()]
    view = adaptation_steps(maml, sx, sy, qx, max_steps=4, query_labels=qy.tolist())
    assert view.coords.shape == (5, len(sx) + len(qx), 2)
    assert view.query_proba.shape == (5, len(qx), 4)
    for k in (0, 2, 4):
        expected = maml.adapt(sx, sy, n_steps=k).predict_proba(qx).numpy()
        np.testing.assert_allclose(view.query_proba[k], expected, atol=1e-5)
        support = maml.adapt(sx, sy, n_steps=k).predict_proba(sx).numpy()
        np.testing.assert_allclose(view.support_proba[k], support, atol=1e-5)
    assert view.support_accuracy[4] >= view.support_accuracy[0]
    assert all(torch.equal(a, b) for a, b in zip(before, maml.parameters()))  # the shared weights are untouched


def test_adaptation_steps_refuse_learners_without_inner_loop_and_bad_counts(trained, task):
    sx, sy, qx, _ = task
    with pytest.raises(ValueError, match="no inner loop"):
        adaptation_steps(trained["protonet"], sx, sy, qx, 3)
    with pytest.raises(ValueError, match="between 0 and"):
        adaptation_steps(trained["maml"], sx, sy, qx, 1000)
    # An ensemble with a MAML member steps, but its members share no feature space to draw.
    members = [{"algorithm": "protonet", "config": {"hidden": 32}}, {"algorithm": "maml", "config": {"hidden": 32}}]
    ensemble = create_learner("ensemble", members=members)
    ensemble.learners[0].load_state_dict(trained["protonet"].state_dict())
    ensemble.learners[1].load_state_dict(trained["maml"].state_dict())
    with pytest.raises(ValueError, match="ensemble has no one feature space to show step by step"):
        adaptation_steps(ensemble.eval(), sx, sy, qx, 3)
    alone = create_learner("ensemble", members=members[1:])  # one member: its own space, step by step
    alone.learners[0].load_state_dict(trained["maml"].state_dict())
    assert len(adaptation_steps(alone.eval(), sx, sy, qx, 2).steps) == 3


def test_confusion_matrix_counts_labelled_queries_only():
    m = confusion_matrix([0, 0, 1, None, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert m.sum() == 5
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix([0, 3], [0, 1], 2)


# -- comparisons -------------------------------------------------------------------------------------


def test_leave_one_out_holds_out_each_support_image(trained, task):
    sx, sy, _, _ = task
    learner = trained["protonet"]
    loo = leave_one_out(learner, sx, sy)
    assert len(loo.predicted) == len(sx) and loo.true == sy.tolist()
    for i in (0, 5):
        keep = torch.arange(len(sy)) != i
        assert loo.predicted[i] == int(learner.adapt(sx[keep], sy[keep]).predict(sx[i : i + 1])[0])
    assert loo.accuracy > 0.25  # far above a 4-way guess after a little meta-training


def test_leave_one_out_needs_two_examples_per_class(trained, glyphs_test):
    t = TaskSampler(glyphs_test, 3, 1, 1, seed=0).sample()
    with pytest.raises(ValueError, match="at least 2 examples"):
        leave_one_out(trained["protonet"], t.support_x, t.support_y)


class Spy:
    """Wraps a learner and records the episodes it is scored on."""

    def __init__(self, learner):
        self.learner, self.seen = learner, []
        self.name, self.device = learner.name, learner.device

    def adapt_options(self):
        return self.learner.adapt_options()

    def __getattr__(self, name):  # anything else (settings_for, episode_work...) as the learner has it
        return getattr(self.learner, name)

    def episode_accuracies(self, tasks, n_steps=None, inner_lr=None):
        self.seen.append(tasks.support_x.clone())
        return self.learner.episode_accuracies(tasks, n_steps=n_steps, inner_lr=inner_lr)


def test_compare_on_benchmark_gives_every_model_identical_episodes(trained, glyphs_test):
    spies = {name: Spy(learner) for name, learner in trained.items()}
    ticks = []
    rows = compare_on_benchmark(spies, glyphs_test, 5, 1, episodes=30, progress=lambda d, t: ticks.append((d, t)))
    assert [r.model for r in rows] == list(trained)
    first = torch.cat(spies["protonet"].seen)
    assert len(first) == 30
    for spy in spies.values():
        assert torch.equal(torch.cat(spy.seen), first)
    assert ticks[-1] == (90, 90) and all(b[0] > a[0] for a, b in zip(ticks, ticks[1:]))
    for r in rows:
        assert r.result.episodes == 30 and 0 <= r.result.ci95 < 0.2 and r.seconds > 0
    by_name = {r.model: r.result.mean for r in rows}
    assert by_name["protonet"] > 0.4  # learned: far above the 20% of a 5-way guess


def test_compare_on_benchmark_adapts_each_model_with_its_settings(trained, glyphs_test):
    """A card's steps and rate for one model reach its episodes; the others keep their own; a setting out of
    range is refused, naming it."""
    settings = {"maml": {"n_steps": 6, "inner_lr": 0.1}, "protonet": {}}
    rows = {r.model: r.result for r in compare_on_benchmark(trained, glyphs_test, 5, 1, 20, settings=settings)}
    batches = benchmark_episodes(glyphs_test, 5, 1, 20)
    chosen = score_on_episodes(trained["maml"], batches, n_steps=6, inner_lr=0.1)
    assert rows["maml"].accuracies == pytest.approx(chosen.accuracies)
    assert rows["maml"].accuracies != pytest.approx(score_on_episodes(trained["maml"], batches).accuracies)
    assert rows["protonet"].accuracies == pytest.approx(score_on_episodes(trained["protonet"], batches).accuracies)
    with pytest.raises(ValueError, match="inner learning rate must be between"):
        compare_on_benchmark(trained, glyphs_test, 5, 1, 5, settings={"maml": {"inner_lr": 100.0}})


def test_benchmark_episodes_are_seeded_and_bounded(glyphs_test):
    a = benchmark_episodes(glyphs_test, 5, 2, 30, seed=1)
    b = benchmark_episodes(glyphs_test, 5, 2, 30, seed=1)
    assert all(torch.equal(x.query_x, y.query_x) for x, y in zip(a, b)) and sum(len(x) for x in a) == 30
    assert not torch.equal(benchmark_episodes(glyphs_test, 5, 2, 30, seed=2)[0].query_x, a[0].query_x)
    with pytest.raises(ValueError, match="between 1 and 600"):
        benchmark_episodes(glyphs_test, 5, 2, 601)


def test_shot_and_step_curves(trained, glyphs_test):
    shots = shot_curve(trained["protonet"], glyphs_test, 5, shots=(1, 5), episodes=40)
    assert [r.k_shot for r in shots] == [1, 5] and shots[1].mean > shots[0].mean
    steps = step_curve(trained["maml"], glyphs_test, 5, 1, steps=[0, 3], episodes=40)
    assert len(steps) == 2 and all(r.episodes == 40 for r in steps)
    assert steps[1].mean > steps[0].mean  # adapting helps: with 0 steps the shared head cannot tell classes apart
    with pytest.raises(ValueError, match="no inner loop"):
        step_curve(trained["protonet"], glyphs_test, 5, 1, steps=[1])


@pytest.mark.parametrize("algorithm", ["maml", "metasgd", "anil", "reptile", "meta-lstm"])
def test_adapt_steps_equals_adapting_with_each_step_count(algorithm, task):
    """One inner loop hands out every step's predictor; each matches `adapt(n_steps=k)` exactly."""
    sx, sy, qx, _ = task
    torch.manual_seed(0)
    learner = create_learner(algorithm, hidden=16)
    predictors = learner.adapt_steps(sx, sy, 3)
    assert len(predictors) == 4
    for k, predictor in enumerate(predictors):
        alone = learner.adapt(sx, sy, n_steps=k)
        torch.testing.assert_close(predictor.logits(qx), alone.logits(qx), atol=1e-5, rtol=1e-4)
        assert [r.loss for r in predictor.trace] == pytest.approx([r.loss for r in alone.trace], rel=1e-5)
    assert not torch.allclose(predictors[0].logits(qx), predictors[3].logits(qx))


def test_score_on_task_uses_labelled_queries_or_leave_one_out(trained, task):
    sx, sy, qx, qy = task
    models = {"protonet": trained["protonet"], "maml": trained["maml"]}
    ticks = []
    scores = score_on_task(models, sx, sy, qx, qy.tolist(), lambda d, t, n: ticks.append((d, t, n)))
    assert [s.model for s in scores] == ["protonet", "maml"] and ticks[-1] == (2, 2, "maml")
    expected = (trained["protonet"].adapt(sx, sy).predict(qx) == qy).float().mean().item()
    assert scores[0].accuracy == pytest.approx(expected) and scores[0].scored_on == f"{len(qy)} queries"
    unlabelled = score_on_task(models, sx, sy, qx, [None] * len(qx))
    assert unlabelled[0].accuracy == pytest.approx(leave_one_out(trained["protonet"], sx, sy).accuracy)
    assert unlabelled[0].predict_ms is None and "leave-one-out" in unlabelled[0].scored_on

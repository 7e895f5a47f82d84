"""The ensemble learner: members' log-probabilities averaged, over shifted views; assembled from checkpoints."""

from __future__ import annotations

import pytest
import torch
from test_lake_game import LAKE_SKIP

from playground.algorithms import create_learner
from playground.cli import main
from playground.data.augment import shift_views
from playground.data.episodes import TaskSampler
from playground.lake.game import lake_runs_available
from playground.zoo.assemble import assemble_ensemble, save_ensemble
from playground.zoo.checkpoints import load_learner, read_checkpoint, save_checkpoint

from synthetic import meta_train_step

SHIPPED = "assets/checkpoints/ensemble_lake.pt"


@pytest.fixture(scope="module")
def task(glyphs_test):
    return TaskSampler(glyphs_test, 5, 2, 3, seed=4).sample()


def _trained(algorithm: str, glyphs, **options):
    torch.manual_seed(0)
    learner = create_learner(algorithm, hidden=16, **options)
    sampler = TaskSampler(glyphs, 5, 1, 2, seed=0)
    for _ in range(3):
        meta_train_step(learner, sampler.sample_batch(2))
    return learner


def _ensemble_of(learners, view_shift=0):
    specs = [{"algorithm": m.name, "config": m.config()} for m in learners]
    ensemble = create_learner("ensemble", members=specs, view_shift=view_shift)
    for own, trained in zip(ensemble.learners, learners):
        own.load_state_dict(trained.state_dict())
    return ensemble


def test_one_member_without_views_predicts_exactly_as_the_member(glyphs_train, task):
    proto = _trained("protonet", glyphs_train)
    ensemble = _ensemble_of([proto])
    want = proto.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    got = ensemble.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_support_fit_is_computed_once_and_only_when_asked_for(glyphs_train, task, monkeypatch):
    """An evaluation never reads the trace, and the ensemble's costs a prediction of the support's views."""
    from playground.algorithms.ensemble import EnsemblePredictor
    from playground.interactive.inference import adapt_and_predict

    ensemble = _ensemble_of([_trained("protonet", glyphs_train), _trained("matching", glyphs_train)], view_shift=1)
    passes = []
    original = EnsemblePredictor.logits
    monkeypatch.setattr(EnsemblePredictor, "logits", lambda self, x: passes.append(len(x)) or original(self, x))
    predictor = ensemble.adapt(task.support_x, task.support_y)
    assert passes == []
    logits = original(predictor, task.support_x)
    want = torch.nn.functional.cross_entropy(logits, task.support_y).item()
    assert predictor.trace[0].loss == pytest.approx(want, rel=1e-5)
    assert predictor.trace[0].accuracy == (logits.argmax(-1) == task.support_y).float().mean().item()
    assert predictor.trace is predictor.trace  # kept, not computed again
    assert passes == [len(task.support_x)]
    # The app shows the trace, so its adapt time includes computing it.
    passes.clear()
    shown = adapt_and_predict("e", ensemble, task.support_x, task.support_y, task.query_x)
    assert passes == [len(task.support_x), len(task.query_x)]
    assert shown.trace[0].loss == pytest.approx(want, rel=1e-5)


def test_two_members_give_the_normalised_geometric_mean_of_their_probabilities(glyphs_train, task):
    a, b = _trained("protonet", glyphs_train), _trained("matching", glyphs_train)
    pa = a.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    pb = b.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    want = (pa * pb).sqrt()
    want = want / want.sum(-1, keepdim=True)
    got = _ensemble_of([a, b]).adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    assert _ensemble_of([a, b]).adapt(task.support_x, task.support_y).embed(task.query_x) is None


def test_views_of_one_protonet_classify_mean_embeddings_against_mean_prototypes(glyphs_train, task):
    proto = _trained("protonet", glyphs_train)
    ensemble = _ensemble_of([proto], view_shift=1)
    predictor = ensemble.adapt(task.support_x, task.support_y)
    with torch.no_grad():
        zq = torch.stack([proto.encoder(v) for v in shift_views(task.query_x, 1)]).mean(0)
        zs = torch.stack([proto.encoder(v) for v in shift_views(task.support_x, 1)]).mean(0)
    protos = torch.stack([zs[task.support_y == c].mean(0) for c in range(5)])
    torch.testing.assert_close(predictor.embed(task.query_x), zq, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(predictor.prototypes_for(task.query_x), protos, atol=1e-5, rtol=1e-4)
    assert torch.equal(predictor.predict(task.query_x), torch.cdist(zq, protos).argmin(-1))
    # The views change the decision scores: this is not the member alone.
    alone = proto.adapt(task.support_x, task.support_y).logits(task.query_x).log_softmax(-1)
    assert not torch.allclose(predictor.logits(task.query_x), alone)


def test_an_ensemble_is_not_meta_trained_and_says_how_it_is_made(capsys):
    ensemble = create_learner("ensemble")
    with pytest.raises(RuntimeError, match="python -m playground ensemble"):
        ensemble.meta_train_step(None)
    assert main(["train", "--algorithm", "ensemble", "--iterations", "1"]) == 2
    assert "assembled from trained checkpoints" in capsys.readouterr().err
    with pytest.raises(ValueError, match="view_shift must be between 0 and 3"):
        create_learner("ensemble", view_shift=4)
    with pytest.raises(ValueError, match="member 0 is itself an ensemble"):
        create_learner("ensemble", members=[{"algorithm": "ensemble", "config": {}}])
    with pytest.raises(ValueError, match="member 0 must be"):
        create_learner("ensemble", members=["protonet"])


def test_assembled_checkpoint_round_trips_and_keeps_the_members_records(glyphs_train, tmp_path, task):
    a, b = _trained("protonet", glyphs_train), _trained("relation", glyphs_train, relation_hidden=4)
    paths = []
    for name, learner, seconds in (("a", a, 60.0), ("b", b, 30.0)):
        paths.append(
            save_checkpoint(
                tmp_path / f"{name}.pt",
                learner,
                training={"iteration": 10, "train_seconds": seconds, "hardware": "cpu"},
                train_config={"protocol": "lake", "command": f"train {name}"},
            )
        )
    out = save_ensemble(paths, tmp_path / "e.pt", view_shift=1, command="ensemble a b")
    loaded = load_learner(out)
    want = _ensemble_of([a, b], view_shift=1).adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    assert torch.equal(loaded.adapt(task.support_x, task.support_y).predict_proba(task.query_x), want)
    ckpt = read_checkpoint(out)
    assert ckpt.training["iteration"] == 20 and ckpt.training["train_seconds"] == 90.0
    assert [m["command"] for m in ckpt.training["members"]] == ["train a", "train b"]
    assert ckpt.extra["train_config"] == {"protocol": "lake", "command": "ensemble a b"}
    # Members trained on different protocols do not make one model.
    save_checkpoint(tmp_path / "v.pt", a, train_config={"protocol": "vinyals"})
    with pytest.raises(ValueError, match="different protocols"):
        assemble_ensemble([paths[0], tmp_path / "v.pt"])
    with pytest.raises(ValueError, match="itself an ensemble"):
        assemble_ensemble([out])


def test_members_with_inner_steps_can_adapt_to_the_plain_support(glyphs_train, tmp_path, task):
    """--plain-support-for-steps: MAML adapts to the support as drawn, the ProtoNet to its views; queries viewed."""
    proto, maml = _trained("protonet", glyphs_train), _trained("maml", glyphs_train)
    paths = [save_checkpoint(tmp_path / f"{m.name}.pt", m, train_config={"protocol": "lake"}) for m in (proto, maml)]
    out = tmp_path / "e.pt"
    flags = ["--view-shift", "1", "--plain-support-for-steps", "--out", str(out)]
    assert main(["ensemble", *map(str, paths), *flags]) == 0
    ensemble = load_learner(out)
    assert ensemble.step_views is False and read_checkpoint(out).config["step_views"] is False
    sx, sy, qx = task.support_x, task.support_y, task.query_x
    views = torch.cat(shift_views(qx, 1))  # every member still sees the queries' 9 views

    def viewed(predictor):
        return predictor.logits(views).log_softmax(-1).view(9, len(qx), -1).mean(0)

    support_views = torch.cat(shift_views(sx, 1)), sy.repeat(9)
    want = (viewed(proto.adapt(*support_views)) + viewed(maml.adapt(sx, sy, n_steps=3))) / 2
    got = ensemble.adapt(sx, sy, n_steps=3).logits(qx)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # The default lets MAML adapt to the views too, and that is a different model.
    both = _ensemble_of([proto, maml], view_shift=1).adapt(sx, sy, n_steps=3).logits(qx)
    assert not torch.allclose(both, got, atol=1e-4)


@pytest.mark.slow  # Lake's runs, five times over
@pytest.mark.skipif(not lake_runs_available(), reason=LAKE_SKIP)
def test_shipped_ensemble_beats_each_of_its_members_on_lakes_runs_as_its_card_says():
    """The README's Lake figure: two ProtoNets and MAML averaged over 9 shifted views, against each alone.

    MAML adapts to the plain support (``step_views`` off), the ProtoNets to its 9 views.
    """
    from playground.lake.game import card_lake_settings
    from playground.lake.runs import evaluate_lake_runs, load_lake_runs
    from playground.zoo.checkpoints import read_card

    runs = load_lake_runs()
    ensemble = load_learner(SHIPPED)
    assert ensemble.view_shift == 1
    assert [m.name for m in ensemble.learners] == ["protonet", "protonet", "maml"]
    assert ensemble.step_views is False
    card = read_card(SHIPPED)
    settings = card_lake_settings(card)  # MAML's steps and rate, chosen on validation runs
    assert settings == {"n_steps": 10, "inner_lr": 0.1}
    together = evaluate_lake_runs(ensemble, runs, **settings).error
    assert together == pytest.approx(card.lake_runs.error, abs=1e-4)
    for member in ensemble.learners:
        assert evaluate_lake_runs(member, runs, **settings).error > together + 0.015
    # The views matter, not only the averaging of three models.
    without_views = create_learner("ensemble", members=ensemble.members, view_shift=0)
    without_views.load_state_dict(ensemble.state_dict())
    assert evaluate_lake_runs(without_views.eval(), runs, **settings).error > together

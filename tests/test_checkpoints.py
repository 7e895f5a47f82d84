from __future__ import annotations

import os
import pickle

import pytest
import torch

from playground.algorithms import available, create_learner, learner_class
from playground.data.episodes import TaskSampler
from playground.zoo.checkpoints import (
    CheckpointError,
    load_learner,
    read_checkpoint,
    save_checkpoint,
    weights_fingerprint,
)

from synthetic import meta_train_step


@pytest.mark.parametrize("algo", available())
def test_round_trip_gives_identical_predictions(algo, tmp_path, glyphs_test):
    torch.manual_seed(0)
    options = {"hidden": 16} if "hidden" in learner_class(algo).hyperparameters() else {}
    learner = create_learner(algo, **options)
    sampler = TaskSampler(glyphs_test, 5, 1, 2, seed=0)
    meta_train_step(learner, sampler.sample_batch(2))
    path = save_checkpoint(tmp_path / "m.pt", learner, training={"iteration": 1})
    loaded = load_learner(path)
    assert type(loaded) is type(learner) and loaded.config() == learner.config()
    task = sampler.sample()
    a = learner.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    b = loaded.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    assert torch.equal(a, b)
    assert read_checkpoint(path).training == {"iteration": 1}
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "temp file left behind"


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch PWNED_MARKER",))


def test_pickle_that_would_run_code_is_refused_and_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"format": "meta-learning-playground/checkpoint", "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match="refused without running"):
        read_checkpoint(path)
    assert not (tmp_path / "PWNED_MARKER").exists()
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError):
        read_checkpoint(raw)
    assert not (tmp_path / "PWNED_MARKER").exists()


def test_truncated_random_and_foreign_files_are_refused(tmp_path):
    learner = create_learner("protonet", hidden=16)
    good = save_checkpoint(tmp_path / "good.pt", learner)
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "noise.pt").write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError):
        read_checkpoint(tmp_path / "noise.pt")
    torch.save({"state_dict": learner.state_dict()}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        read_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", create_learner("protonet", hidden=16))
    payload = torch.load(path, weights_only=True)
    payload["config"]["hidden"] = 32  # config no longer matches the weights
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_learner(path)
    payload["algorithm"] = "no-such-algorithm"
    torch.save(payload, path)
    with pytest.raises(CheckpointError):
        load_learner(path)


def test_export_for_inference_drops_resume_state_and_keeps_predictions(tmp_path, glyphs_test):
    from playground.zoo.checkpoints import export_for_inference

    torch.manual_seed(0)
    learner = create_learner("protonet", hidden=16)
    sampler = TaskSampler(glyphs_test, 5, 1, 2, seed=0)
    learner.meta_train_step(sampler.sample_batch(2))
    full = save_checkpoint(
        tmp_path / "full.pt",
        learner,
        training={"iteration": 1},
        optimizer=learner.optimizer.state_dict(),
        sampler=sampler.state_dict(),
        train_config={"algorithm": "protonet"},
    )
    slim = export_for_inference(full, tmp_path / "slim.pt")
    ckpt = read_checkpoint(slim)
    assert ckpt.optimizer is None and "sampler" not in ckpt.extra
    assert ckpt.training == {"iteration": 1} and ckpt.extra["train_config"] == {"algorithm": "protonet"}
    assert slim.stat().st_size < 0.6 * full.stat().st_size  # Adam's two moments per weight are gone
    task = sampler.sample()
    a = learner.adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    b = load_learner(slim).adapt(task.support_x, task.support_y).predict_proba(task.query_x)
    assert torch.equal(a, b)


def test_weights_fingerprint_survives_a_round_trip_and_sees_one_flipped_bit(tmp_path):
    learner = create_learner("maml", n_way=5).eval()
    first = weights_fingerprint(learner)
    save_checkpoint(tmp_path / "m.pt", learner)
    assert weights_fingerprint(load_learner(tmp_path / "m.pt")) == first
    support = torch.rand(5, 1, 28, 28)
    learner.adapt(support, torch.arange(5))  # adapting never moves the shared weights
    assert weights_fingerprint(learner) == first
    with torch.no_grad():  # the smallest change a float can make: one ulp of one weight
        w = next(learner.parameters())
        w.view(-1)[0] = torch.nextafter(w.view(-1)[0], torch.tensor(float("inf")))
    assert weights_fingerprint(learner) != first
    assert weights_fingerprint(create_learner("protonet")) != weights_fingerprint(create_learner("protonet", hidden=32))


def test_ship_carries_the_model_card_and_its_note_and_never_leaves_a_stale_one(tmp_path):
    from playground.zoo.card import ModelCard
    from playground.zoo.checkpoints import read_card, ship, write_card

    learner = create_learner("protonet", hidden=8)
    full = save_checkpoint(tmp_path / "run" / "best.pt", learner, optimizer=learner.optimizer.state_dict())
    target = tmp_path / "assets" / "m.pt"
    target.parent.mkdir()
    # No card yet: the shipped model gets none, and a note has nowhere to go.
    write_card(target, {"note": "an older model's card"})
    with pytest.raises(CheckpointError, match="no model card"):
        ship(full, target, note="x")
    assert ship(full, target) == (target, None)
    assert read_card(target) is None  # the older card would have described other weights
    card = {"algorithm": "protonet", "evaluation": {"results": [{"n_way": 5, "accuracy": 0.9}]}, "note": "old"}
    write_card(full, card)
    path, shipped_card = ship(full, target, note="made for the test")
    assert read_card(shipped_card) == read_card(path) == ModelCard.from_dict({**card, "note": "made for the test"})
    assert read_checkpoint(path).optimizer is None
    assert ship(full, target)[1] is not None and read_card(target).note == "old"  # no --note: the card's own

from __future__ import annotations

import torch

from playground.training import cosine_schedule


def _lrs(sched, opt, steps):
    out = []
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_cosine_schedule_decays_to_the_floor_and_resumes_without_restarting():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = cosine_schedule(opt, 10)
    lrs = _lrs(sched, opt, 10)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert abs(lrs[-1] - 0.05) < 1e-9
    state = sched.state_dict()
    # Resume the same run with a longer budget: the rate keeps going down, it does not jump back up.
    opt2 = torch.optim.SGD([p], lr=1.0)
    sched2 = cosine_schedule(opt2, 20)
    sched2.load_state_dict(state)
    more = _lrs(sched2, opt2, 10)
    assert all(a >= b for a, b in zip(more, more[1:]))
    assert more[0] <= 0.5 + 1e-9 and abs(more[-1] - 0.05) < 1e-9


def test_train_shots_sets_the_training_episodes_and_validation_keeps_shots(
    glyphs_train, glyphs_test, tmp_path, monkeypatch
):
    import pytest

    from playground.algorithms import learner_class
    from playground.data.protocols import Splits
    from playground.training import TrainConfig, train, validate_config

    splits = Splits("lake", glyphs_train, glyphs_test, glyphs_test)
    monkeypatch.setattr("playground.training.prepare.load_splits", lambda *a, **k: splits)
    cls = learner_class("protonet")
    seen, original = [], cls.meta_train_step
    monkeypatch.setattr(
        cls,
        "meta_train_step",
        lambda self, tasks, **kw: seen.append(tasks.support_x.shape[1]) or original(self, tasks, **kw),
    )
    from playground.training import loop

    val_shots, evaluate = [], loop.evaluate_few_shot
    monkeypatch.setattr(
        loop,
        "evaluate_few_shot",
        lambda learner, ds, n, k, *a, **kw: val_shots.append(k) or evaluate(learner, ds, n, k, *a, **kw),
    )
    cfg = TrainConfig(
        algorithm="protonet", ways=5, shots=1, train_shots=4, query=2, meta_batch=2, iterations=2, val_every=2,
        val_episodes=4, device="cpu", out=str(tmp_path), learner={"hidden": 8},
    )  # fmt: skip
    train(cfg, echo=lambda *_: None)
    assert seen == [5 * 4, 5 * 4] and val_shots == [1]
    # Training's shots and the queries must fit a character's drawings, named by the flag at fault.
    cfg.train_shots, cfg.query = 19, 2
    with pytest.raises(ValueError, match="--train-shots \\+ --query = 21 exceeds"):
        validate_config(cfg, splits)


def test_init_weights_takes_the_base_command_from_its_card_when_the_checkpoint_lacks_it(tmp_path):
    from playground.algorithms import create_learner
    from playground.training import init_weights
    from playground.zoo.checkpoints import save_checkpoint, write_card

    # A checkpoint saved before runs recorded their command keeps it in its model card only.
    old = save_checkpoint(tmp_path / "old.pt", create_learner("protonet"), {"iteration": 7}, train_config={"seed": 0})
    command = "python -m playground train --algorithm protonet --iterations 7 --out runs/old"
    write_card(old, {"training": {"command": command}})
    base = init_weights(create_learner("protonet"), old)
    assert base["command"] == command and base["iterations"] == 7
    # The checkpoint's own record wins over the card's, and no card at all leaves it empty.
    newer = save_checkpoint(tmp_path / "new.pt", create_learner("protonet"), {}, train_config={"command": "own"})
    write_card(newer, {"training": {"command": "card's"}})
    assert init_weights(create_learner("protonet"), newer)["command"] == "own"
    bare = save_checkpoint(tmp_path / "bare.pt", create_learner("protonet"), {}, train_config={})
    assert init_weights(create_learner("protonet"), bare)["command"] == ""


def test_a_resume_that_never_beats_its_best_names_no_missing_best_checkpoint(
    glyphs_train, glyphs_test, tmp_path, monkeypatch
):
    """Resumed into a new folder without beating the best so far, a run writes no best.pt there, and
    must not name one: it says where the best is instead."""
    from playground.data.protocols import Splits
    from playground.training import TrainConfig, train

    splits = Splits("lake", glyphs_train, glyphs_test, glyphs_test)
    monkeypatch.setattr("playground.training.prepare.load_splits", lambda *a, **k: splits)
    cfg = TrainConfig(
        algorithm="protonet", ways=5, shots=1, query=2, meta_batch=2, iterations=2, val_every=2,
        val_episodes=4, device="cpu", out=str(tmp_path / "first"), learner={"hidden": 8},
    )  # fmt: skip
    best = train(cfg, echo=lambda *_: None)
    assert best == tmp_path / "first" / "best.pt" and best.is_file()
    # A best so far that no validation can beat (above 100%).
    last = tmp_path / "first" / "last.pt"
    payload = torch.load(last, weights_only=True)
    payload["training"]["best_val"] = 2.0
    torch.save(payload, last)
    said: list[str] = []
    cfg.iterations, cfg.out = 4, str(tmp_path / "second")
    assert train(cfg, resume=last, echo=lambda *a: said.append(" ".join(map(str, a)))) is None
    assert (tmp_path / "second" / "last.pt").is_file() and not (tmp_path / "second" / "best.pt").exists()
    message = next(s for s in said if "no validation of this run beat" in s)
    assert "the best it resumed with (200.00% at iteration 2)" in message
    assert f"that checkpoint is {best}," in message and str(tmp_path / "second" / "last.pt") in message


def test_save_every_writes_last_pt_between_validations(glyphs_train, glyphs_test, tmp_path, monkeypatch):
    """last.pt is written every --save-every iterations as well as at each validation (once when both fall
    together), so a run killed outright loses at most that many iterations."""
    from playground.data.protocols import Splits
    from playground.training import TrainConfig, loop, train

    splits = Splits("lake", glyphs_train, glyphs_test, glyphs_test)
    monkeypatch.setattr("playground.training.prepare.load_splits", lambda *a, **k: splits)
    written, save = [], loop.save_checkpoint
    monkeypatch.setattr(
        loop,
        "save_checkpoint",
        lambda path, *a, **kw: written.append((path.name, kw["training"]["iteration"])) or save(path, *a, **kw),
    )
    cfg = TrainConfig(
        algorithm="protonet", query=2, meta_batch=1, iterations=5, val_every=4, save_every=2, val_episodes=2,
        device="cpu", out=str(tmp_path), learner={"hidden": 8},
    )  # fmt: skip
    train(cfg, echo=lambda *_: None)
    assert [it for name, it in written if name == "last.pt"] == [2, 4, 5]
    written.clear()
    cfg.save_every, cfg.out = 0, str(tmp_path / "validation-only")
    train(cfg, echo=lambda *_: None)
    assert [it for name, it in written if name == "last.pt"] == [4, 5]

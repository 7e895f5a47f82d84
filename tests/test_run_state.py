"""`RunState`: its state_dict round trip, and the checkpoint layout older runs wrote, which must keep resuming."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch

from playground.data.augment import shift_tasks
from playground.data.datasets import dataset
from playground.training import RunState, TrainConfig, train
from playground.training.prepare import start_run
from playground.zoo.checkpoints import read_checkpoint

CHECKPOINTS = Path(__file__).resolve().parent.parent / "assets" / "checkpoints"


def _run(glyphs, seed: int) -> RunState:
    cfg = TrainConfig(query=2, meta_batch=2, iterations=10, seed=seed, learner={"hidden": 8})
    return start_run(cfg, dataset("omniglot"), glyphs, torch.device("cpu"), None, lambda *_: None)


def _steps(run: RunState, n: int) -> None:
    for _ in range(n):
        stats = run.learner.meta_train_step(shift_tasks(run.sampler.sample_batch(2), 1, run.shifts))
        run.scheduler.step()
        run.advance(stats.loss, stats.accuracy)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def test_a_fresh_record_holds_no_unset_entries(glyphs_train):
    # Readers take a missing key for "none": `init_weights` reads ``base`` with a default of {}.
    assert _run(glyphs_train, 0).record() == {"iteration": 0, "best_val": -1.0, "train_seconds": 0.0}


def test_state_dict_round_trips_and_the_loaded_run_goes_on_as_the_saved_one(glyphs_train):
    saved = _run(glyphs_train, seed=0)
    _steps(saved, 3)
    saved.best_val, saved.best_iteration, saved.hardware = 0.5, 2, "CPU"
    saved.base, saved.episode_streams = {"checkpoint": "base.pt", "iterations": 7}, [[1, 123]]
    saved.other = {"calibrated_test_inner_steps": {"1": 0.9}}
    state = copy.deepcopy(saved.state_dict())  # a snapshot, as a checkpoint file is
    assert state["training"]["iteration"] == 3 and state["training"]["calibrated_test_inner_steps"] == {"1": 0.9}

    loaded = _run(glyphs_train, seed=1)  # another seed: every stream differs until the state is loaded
    loaded.learner.load_state_dict(saved.learner.state_dict())  # the weights go with the learner, not the state
    assert not _same(loaded.state_dict(), state)
    loaded.load_state_dict(state)
    assert _same(loaded.state_dict(), state)

    # The same episodes, shifts, learning rates, global random stream and weights from here on.
    for run in (saved, loaded):
        torch.set_rng_state(state["torch_rng"])
        _steps(run, 2)
    assert _same(loaded.state_dict(), saved.state_dict())
    for name, value in saved.learner.state_dict().items():
        assert torch.equal(loaded.learner.state_dict()[name], value), name


def test_the_record_of_every_shipped_checkpoint_loads_whole(glyphs_train):
    """As a resume from one begins: its record over a new run's, every entry kept, those of other commands too."""
    fresh = _run(glyphs_train, 0).record()
    paths = sorted(CHECKPOINTS.glob("*.pt"))
    assert paths
    for path in paths:
        training = read_checkpoint(path).training
        run = _run(glyphs_train, 0)
        run.load_state_dict({"training": training})
        assert _same(run.record(), {**fresh, **training}), path.name


@pytest.mark.parametrize("augment_shift, dropped", [(1, ()), (0, ("shift_rng",))], ids=["as-now", "before-shifts"])
def test_a_last_pt_laid_out_as_older_runs_wrote_it_resumes_to_the_uninterrupted_result(
    glyphs_train, glyphs_test, tmp_path, monkeypatch, augment_shift, dropped
):
    """The layout of last.pt written out entry by entry, as every run so far wrote it (runs from before
    shifts existed have no ``shift_rng``): resuming it ends where the uninterrupted run ends."""
    from playground.data.protocols import Splits

    splits = Splits("lake", glyphs_train, glyphs_test, glyphs_test)
    monkeypatch.setattr("playground.training.prepare.load_splits", lambda *a, **k: splits)
    whole = tmp_path / "whole"
    cfg = TrainConfig(
        algorithm="protonet", query=2, meta_batch=2, iterations=4, val_every=2, val_episodes=2, save_every=0,
        augment_shift=augment_shift, device="cpu", out=str(whole), learner={"hidden": 8},
    )  # fmt: skip

    def keep_iteration_2(learner, iteration, loss, accuracy):
        if iteration == 3:  # last.pt still holds iteration 2's validation
            shutil.copy(whole / "last.pt", tmp_path / "at2.pt")

    train(cfg, echo=lambda *_: None, on_iteration=keep_iteration_2)
    at2 = torch.load(tmp_path / "at2.pt", weights_only=True)
    assert at2["training"]["iteration"] == 2
    old = {
        "format": "meta-learning-playground/checkpoint",
        "version": 1,
        "algorithm": "protonet",
        "config": at2["config"],
        "state_dict": at2["state_dict"],
        "training": {
            "iteration": 2,
            "best_val": at2["training"]["best_val"],
            "train_seconds": 1.5,
            "hardware": "an older machine",
            "loss_avg": at2["training"]["loss_avg"],
            "acc_avg": at2["training"]["acc_avg"],
            "best_iteration": 2,
            "calibrated_test_inner_steps": {"1": 0.25},  # another command's entry, carried on
        },
        "optimizer": at2["optimizer"],
        "scheduler": at2["scheduler"],
        "sampler": at2["sampler"],
        "torch_rng": at2["torch_rng"],
        "shift_rng": at2["shift_rng"],
        "train_config": at2["train_config"],
    }
    for key in dropped:
        del old[key]
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    torch.save(old, resumed / "last.pt")

    cfg.out = str(resumed)
    train(cfg, resume=resumed / "last.pt", echo=lambda *_: None)
    want, got = (read_checkpoint(d / "last.pt") for d in (whole, resumed))
    assert got.training["iteration"] == 4 and got.training["hardware"] == "an older machine"
    assert got.training["calibrated_test_inner_steps"] == {"1": 0.25} and got.training["train_seconds"] > 1.5
    for name, value in want.state_dict.items():
        assert torch.equal(got.state_dict[name], value), name
    entries = [[json.loads(x) for x in (d / "log.jsonl").read_text().splitlines()] for d in (whole, resumed)]
    assert [{k: v for k, v in e.items() if k != "seconds"} for e in entries[1]] == [
        {k: v for k, v in e.items() if k != "seconds"} for e in entries[0] if e["iteration"] == 4
    ]

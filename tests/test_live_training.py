"""The live training job and its scheduler, on real Omniglot in real subprocesses: it reports, snapshots,
stops at its budget or when cancelled, runs one job at a time in FIFO order, and frees the slot of a
session that went away."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from playground.training.live import (
    FINISHED,
    SNAPSHOT_EVERY,
    LiveSettings,
    Probe,
    TrainingScheduler,
    live_algorithms,
    project,
)

pytestmark = pytest.mark.omniglot


def wait(job, until, timeout: float = 180.0, also=()):
    """Poll ``job`` (and the jobs ``also``, as their pages do) until ``until(view)``; returns that view."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for other in also:
            other.view()
        view = job.view()
        if until(view):
            return view
        time.sleep(0.2)
    raise AssertionError(f"timed out; last state {view.state}: {view.message}")


def test_the_registry_declares_which_learners_train_live():
    names = live_algorithms()
    assert {"protonet", "maml", "reptile"} <= set(names)
    assert "ensemble" not in names and "pixel_nn" not in names


@pytest.mark.parametrize(
    "settings, words",
    [
        (LiveSettings("ensemble"), "cannot be trained live"),
        (LiveSettings("protonet", ways=1), "ways must be between"),
        (LiveSettings("protonet", inner_steps=3), "has no inner steps"),
        (LiveSettings("maml", inner_steps=50), "inner steps must be between"),
        (LiveSettings("protonet", budget=1000), "budget"),
    ],
)
def test_bad_settings_are_refused_in_words(settings, words):
    with pytest.raises(ValueError, match=words):
        TrainingScheduler(threads=1).submit(settings)


def test_one_projection_keeps_the_latest_fit():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 8)), rng.normal(size=(12, 8))
    coords = project([a, b])
    assert [c.shape for c in coords] == [(12, 2), (12, 2)]
    # The fit is the last one's: projecting the last alone gives the same coordinates.
    np.testing.assert_allclose(project([b])[0], coords[1])


@pytest.mark.slow
@pytest.mark.alone  # what 20 seconds of training learns
def test_a_protonet_job_reports_learns_and_ends_at_its_budget(omniglot):
    runner = TrainingScheduler(threads=1)
    job = runner.submit(LiveSettings("protonet", budget=20))
    view = wait(job, lambda v: v.finished)
    assert view.state == "done", view.message
    # It stops at the first iteration past its budget, however slow the CPU: every progress point at or past
    # the budget is that last iteration's.
    assert view.progress[-1].seconds >= 20
    assert {p.iteration for p in view.progress if p.seconds >= 20} == {view.iterations}
    assert len(view.progress) > 5 and view.iterations > 5
    # The random initialisation, snapshots at least SNAPSHOT_EVERY apart in between, the final one.
    assert len(view.snapshots) >= 3
    between = [s.seconds for s in view.snapshots[1:-1]]
    assert all(b - a >= SNAPSHOT_EVERY for a, b in zip(between, between[1:]))
    assert {"random", "shipped"} <= set(view.references)
    first, last = view.snapshots[0].measure, view.snapshots[-1].measure
    assert first.accuracy == view.references["random"].accuracy
    # 20 s of meta-training clearly beats the random initialisation on the fixed evaluation episodes.
    assert last.accuracy > first.accuracy + 0.1, (first.accuracy, last.accuracy)
    assert last.embedding is not None and last.embedding.shape[0] == 60 and last.step_losses is None
    learner = job.learner()
    assert learner is not None and not learner.training
    assert not runner.busy()


@pytest.mark.slow
def test_queue_is_fifo_cancel_works_and_a_gone_session_frees_the_slot(lake_splits):
    runner = TrainingScheduler(threads=1, abandon_after=3.0)
    first = runner.submit(LiveSettings("maml", inner_steps=2, budget=120))
    second = runner.submit(LiveSettings("protonet", budget=5))
    third = runner.submit(LiveSettings("protonet", budget=5))
    view = second.view()
    assert (view.state, view.position) == ("queued", 1) and view.wait > 20
    assert third.view().position == 2
    third.cancel()
    assert third.view().state == "cancelled"
    running = wait(first, lambda v: v.state == "running" and len(v.snapshots) >= 2, also=[second])
    assert running.snapshots[-1].measure.step_losses is not None  # MAML's inner-step losses
    assert len(running.snapshots[-1].measure.step_losses) == 11
    # Each snapshot brings the weights it measured: a run ended by force still leaves its latest model.
    with runner._lock:  # the view and the weights of one moment (the monitor drains under this lock)
        running, latest = first.view(), first.learner()
    assert running.has_model and latest is not None and not latest.training
    measured = running.snapshots[-1].measure  # measured again below, once no job waits on this test's polls
    first.cancel()  # Stop: ends at the iteration in progress, far before its budget, with the model so far
    stopped = wait(first, lambda v: v.finished, timeout=90, also=[second])
    assert stopped.state == "stopped" and stopped.progress[-1].seconds < 120
    assert first.learner() is not None
    # The second starts when the first ends; then its session goes (no polls, and its browser is gone).
    wait(second, lambda v: v.state in ("starting", "running"), timeout=60)
    second.alive = lambda: False
    deadline = time.monotonic() + 90  # 3 s to notice, then the iteration in progress on a slow CPU
    while second.state not in FINISHED and time.monotonic() < deadline:
        time.sleep(0.5)  # no view(): nobody polls
    assert second.state in ("stopped", "cancelled", "done"), second.state
    assert "session is gone" in second.message or second.state == "done"
    assert not runner.busy()
    torch.set_num_threads(runner.threads)  # as the job measured: ten inner steps amplify a thread count's rounding
    again = Probe(lake_splits.test).measure(latest)
    assert again.accuracy == pytest.approx(measured.accuracy, abs=0.001)  # one query of 1000, for rounding
    assert again.step_losses == pytest.approx(measured.step_losses, rel=1e-4)

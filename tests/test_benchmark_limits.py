"""The work one click of the compare page may start: estimated, capped, stoppable, one at a time."""

from __future__ import annotations

import threading

import pytest
import torch

from playground.algorithms import create_learner
from playground.evaluation.compare import (
    MAX_WORK_PER_CLICK,
    OneAtATime,
    Stopped,
    benchmark_turn,
    benchmark_work,
    bounded_threads,
    compare_on_benchmark,
    curves_work,
    episode_work,
    score_on_episodes,
    shot_curve,
)
from playground.zoo.shipped import default_selection, shipped_models


class Counting:
    """A learner that counts the episodes it is asked to score."""

    def __init__(self, learner):
        self.learner, self.episodes = learner, 0
        self.device = learner.device

    def adapt_options(self):
        return self.learner.adapt_options()

    def episode_work(self, *args, **kwargs):
        return self.learner.episode_work(*args, **kwargs)

    def settings_for(self, *args, **kwargs):
        return self.learner.settings_for(*args, **kwargs)

    def episode_accuracies(self, tasks, n_steps=None, inner_lr=None):
        self.episodes += len(tasks)
        return self.learner.episode_accuracies(tasks, n_steps=n_steps, inner_lr=inner_lr)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return {
        "protonet": create_learner("protonet", hidden=8),
        "maml": create_learner("maml", hidden=8, test_inner_steps=2),
    }


def test_work_grows_with_ways_shots_steps_and_episodes(small):
    protonet, maml = small["protonet"], small["maml"]
    # every image once; a learner with inner steps adds a forward and a backward pass over the support per step
    assert episode_work(protonet, 5, 1, n_query=5) == 5 * (1 + 5)
    assert episode_work(maml, 5, 1, n_query=5) == 5 * (1 * (1 + 2 * 2) + 5)  # its own 2 steps
    assert episode_work(maml, 20, 5, {"n_steps": 30}, n_query=5) == 20 * (5 * 61 + 5)
    assert episode_work(protonet, 5, 1, {"n_steps": 30}) == episode_work(protonet, 5, 1)  # it has no steps
    est = benchmark_work(small, 20, 5, 100, {"maml": {"n_steps": 30}})
    assert est.per_episode == episode_work(protonet, 20, 5) + episode_work(maml, 20, 5, {"n_steps": 30})
    assert est.passes == 100 * est.per_episode and est.cap == MAX_WORK_PER_CLICK
    assert benchmark_work(small, 20, 5, 200).passes == 2 * benchmark_work(small, 20, 5, 100).passes


def test_learners_that_cost_more_per_image_declare_it():
    """An ensemble pays for every member on every shifted view; a relation network for every (query, class) pair."""
    spec = {"algorithm": "protonet", "config": {"hidden": 8}}
    alone = create_learner("protonet", hidden=8)
    three = create_learner("ensemble", members=[spec, spec, spec], view_shift=1)
    assert three.episode_work(5, 1, 5) == 3 * 9 * alone.episode_work(5, 1, 5)
    relation = create_learner("relation", hidden=8)
    assert relation.episode_work(20, 1, 5) == 20 * (1 + 5) + 20 * 5 * 20


def test_curves_count_every_point(small):
    est = curves_work(small, 5, 1, 10, max_steps=3, shots=(1, 2), settings=lambda name, k: {"n_steps": 4})
    protonet, maml = small["protonet"], small["maml"]
    shots = sum(episode_work(m, 5, k, {"n_steps": 4}) for m in (protonet, maml) for k in (1, 2))
    steps = sum(episode_work(maml, 5, 1, {"n_steps": s}) for s in range(4))
    assert est.per_episode == shots + steps and est.passes == 10 * (shots + steps)


def test_the_issues_click_is_refused_and_the_default_benchmark_fits():
    """All shipped models, 20-way, 600 episodes (a core held for over 6.5 minutes) is over the cap, and the
    refusal says what to lower; the three default models at 5-way 1-shot, 100 episodes, are not."""
    entries = {m.name: m for m in shipped_models()}
    learners = {name: e.load("cpu", warm=False) for name, e in entries.items()}
    assert len(learners) == 15
    cards = {name: e.adapt_defaults(20, 1) for name, e in entries.items()}
    maml = learners["maml_lake"]
    assert episode_work(maml, 20, 1) == episode_work(maml, 20, 1, cards["maml_lake"])  # unset: the card's, as adapt
    issue = benchmark_work(learners, 20, 1, 600, cards)
    assert not issue.fits and issue.most_episodes() == 0
    refusal = issue.refusal()
    assert "Choose fewer models (the costliest here: " in refusal and f"more than the {MAX_WORK_PER_CLICK:,}" in refusal
    default = {n: learners[n] for n in default_selection(list(learners))}
    fits = benchmark_work(default, 5, 1, 100, {n: entries[n].adapt_defaults(5, 1) for n in default})
    assert fits.fits and fits.refusal() == ""
    over = benchmark_work(default, 5, 1, 600, {n: entries[n].adapt_defaults(5, 1) for n in default})
    assert not over.fits and f"Lower the episodes to {over.most_episodes()} or fewer" in over.refusal()
    assert 100 <= over.most_episodes() < 600


def test_a_benchmark_over_the_cap_is_refused_before_any_episode(small, glyphs_test):
    spies = {name: Counting(learner) for name, learner in small.items()}
    with pytest.raises(ValueError, match="more than the 1,000 one click may start. Lower the episodes to 10 or fewer"):
        compare_on_benchmark(spies, glyphs_test, 5, 1, episodes=30, max_work=1_000)
    assert all(spy.episodes == 0 for spy in spies.values())
    rows = compare_on_benchmark(spies, glyphs_test, 5, 1, episodes=10, max_work=1_000)
    assert [r.result.episodes for r in rows] == [10, 10]


def test_should_stop_ends_the_benchmark_between_episodes(small, glyphs_test):
    spies = {name: Counting(learner) for name, learner in small.items()}
    asked = []

    def visitor_left() -> bool:
        asked.append(1)
        return len(asked) > 7  # the visitor leaves while the second model is on its third episode

    with pytest.raises(Stopped):
        compare_on_benchmark(spies, glyphs_test, 5, 1, episodes=5, should_stop=visitor_left)
    assert spies["protonet"].episodes == 5 and spies["maml"].episodes == 2
    # the same for the curves, and a check that never fires changes nothing
    with pytest.raises(Stopped):
        shot_curve(small["protonet"], glyphs_test, 5, shots=(1, 2), episodes=10, should_stop=lambda: True)
    from playground.evaluation.compare import benchmark_episodes

    batches = benchmark_episodes(glyphs_test, 5, 1, 30)
    assert (
        score_on_episodes(small["protonet"], batches, should_stop=lambda: False).accuracies
        == score_on_episodes(small["protonet"], batches).accuracies
    )


def test_one_benchmark_at_a_time():
    """A second click waits, told so, until the first ends; a waiter whose visitor leaves gives up."""
    turn = OneAtATime(poll_s=0.01)
    holding, release = threading.Event(), threading.Event()
    order, waited = [], []

    def first() -> None:
        with turn.turn():
            order.append("first starts")
            holding.set()
            release.wait(10)
            order.append("first ends")

    def second() -> None:
        with turn.turn(on_wait=lambda: waited.append("told to wait")):
            order.append("second starts")

    a = threading.Thread(target=first)
    a.start()
    holding.wait(10)
    b = threading.Thread(target=second)
    b.start()
    # the waiter gives up when its visitor leaves, without ever holding the turn
    with pytest.raises(Stopped):
        with turn.turn(should_stop=lambda: True):
            order.append("third starts")
    release.set()
    a.join(10)
    b.join(10)
    assert waited == ["told to wait"]
    assert order == ["first starts", "first ends", "second starts"]
    assert not turn.busy


def test_a_benchmark_turn_leaves_a_core_and_puts_the_threads_back(monkeypatch):
    import playground.evaluation.compare as compare

    before = torch.get_num_threads()
    with bounded_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    monkeypatch.setattr(compare, "usable_cpus", lambda: 4)
    turn = OneAtATime()
    with benchmark_turn(turn=turn):
        assert torch.get_num_threads() == 3 and turn.busy
    assert torch.get_num_threads() == before and not turn.busy

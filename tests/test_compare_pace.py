"""What the compare page says about a run: how long it will take here, how far its figures can be trusted,
and which colour is which model."""

from __future__ import annotations

import pytest
import torch

from playground.algorithms import create_learner
from playground.evaluation.compare import (
    FEW_EPISODES,
    accuracy_text,
    benchmark_episodes,
    benchmark_work,
    curves_work,
    episode_work,
    few_episodes_note,
    few_queries_note,
    score_on_episodes,
)
from playground.evaluation.few_shot import EvalResult
from playground.evaluation.pace import about, measured, record, seconds_per_pass
from playground.figures.charts import accuracy_curves, model_colours, score_bars
from playground.zoo.shipped import shipped_models


def fresh() -> dict:
    """Learners no run has timed yet (the pace is kept per loaded model)."""
    torch.manual_seed(0)
    return {
        "protonet": create_learner("protonet", hidden=8),
        "maml": create_learner("maml", hidden=8, test_inner_steps=2),
    }


def test_nothing_measured_gives_the_work_and_no_seconds():
    models = fresh()
    est = benchmark_work(models, 5, 1, 10)
    assert est.seconds is None
    assert est.summary().startswith(f"about {est.passes:,} image passes") and " s " not in est.summary()
    record(models["protonet"], 1000, 1.0)  # one model measured is not enough to say how long all of them take
    assert benchmark_work(models, 5, 1, 10).seconds is None


def test_seconds_scale_with_the_work_and_with_the_measured_pace():
    models = fresh()
    protonet, maml = models["protonet"], models["maml"]
    record(protonet, 1000, 1.0)  # 1 ms an image pass
    record(maml, 1000, 2.0)  # 2 ms
    est = benchmark_work(models, 5, 1, 10)
    expected = 10 * (episode_work(protonet, 5, 1) * 0.001 + episode_work(maml, 5, 1) * 0.002)
    assert est.seconds == pytest.approx(expected)
    assert benchmark_work(models, 5, 1, 20).seconds == pytest.approx(2 * expected)
    assert benchmark_work(models, 20, 5, 10).seconds > est.seconds
    assert est.summary().startswith(f"{about(expected)} on this server (about {est.passes:,} image passes")
    # a slower run of MAML (a busier server) raises the estimate for every later click
    record(maml, 1000, 8.0)
    assert seconds_per_pass(maml) == pytest.approx(0.005)
    assert benchmark_work(models, 5, 1, 10).seconds > est.seconds
    # the curves count the same way
    curves = curves_work(models, 5, 1, 10, max_steps=2, shots=(1, 2))
    assert curves.seconds == pytest.approx(
        sum(seconds_per_pass(models[name]) * passes * 10 for name, passes in curves.per_model)
    )


def test_the_pace_follows_the_latest_runs():
    learner = fresh()["protonet"]
    record(learner, 1000, 10.0)  # a run while the server was busy
    for _ in range(30):
        record(learner, 1000, 1.0)
    assert seconds_per_pass(learner) == pytest.approx(0.001)


def test_a_refused_click_says_how_long_it_would_have_taken():
    models = fresh()
    record(models["protonet"], 10, 1.0)
    record(models["maml"], 10, 1.0)
    est = benchmark_work(models, 5, 1, 100, cap=1_000)
    assert not est.fits and est.refusal().startswith(f"This would take {about(est.seconds)} on this server (")


def test_scoring_episodes_measures_the_pace(glyphs_test):
    learner = fresh()["maml"]
    assert measured(learner) is None
    batches = benchmark_episodes(glyphs_test, 5, 1, 6)
    score_on_episodes(learner, batches, n_steps=3)
    rate = measured(learner)
    assert rate is not None and rate.passes == 6 * episode_work(learner, 5, 1, {"n_steps": 3})
    assert seconds_per_pass(learner) > 0


def test_a_model_loaded_for_the_app_has_its_pace_measured():
    entry = next(e for e in shipped_models() if e.name == "protonet_lake")
    assert seconds_per_pass(entry.load("cpu", warm=False)) is None
    warm = entry.load("cpu")
    assert seconds_per_pass(warm) > 0
    assert benchmark_work({"protonet_lake": warm}, 5, 1, 100).seconds > 0


@pytest.mark.parametrize(
    "seconds, words",
    [
        (0.2, "under a second"),
        (4.4, "about 4 s"),
        (23, "about 25 s"),
        (59, "about 1 minute"),
        (100, "about 1.5 minutes"),
        (169, "about 3 minutes"),
        (840, "about 14 minutes"),
        (7300, "about 2 hours"),
    ],
)
def test_seconds_in_words(seconds, words):
    assert about(seconds) == words


def test_few_episodes_are_called_too_few_and_no_bare_zero_spread_is_shown():
    perfect = EvalResult([1.0] * 10, 5, 1, 5)
    varied = EvalResult([0.8, 1.0] * 5, 5, 1, 5)
    assert "±" not in accuracy_text(perfect) and "same in all 10 episodes" in accuracy_text(perfect)
    assert accuracy_text(varied) == varied.format()
    note = few_episodes_note({"protonet_lake": [perfect], "maml_lake": [varied]}, "Episodes")
    assert "only 10 episodes" in note and "600" in note and "Episodes" in note
    assert "protonet_lake scored the same in every episode" in note and "maml_lake scored" not in note
    # enough episodes with some spread: nothing to add
    plenty = EvalResult([0.8, 1.0] * (FEW_EPISODES // 2), 5, 1, 5)
    assert few_episodes_note({"maml_lake": [plenty]}, "Episodes") == ""
    # every episode alike is worth saying at any number of episodes, but then they are not too few
    flawless = EvalResult([1.0] * 600, 5, 1, 5)
    note = few_episodes_note({"protonet_lake": [flawless]}, "Episodes")
    assert "protonet_lake scored the same in every episode" in note and "only" not in note
    # a curve: the fewest episodes of any point count, and a point with no spread is named by its model
    curve = few_episodes_note({"protonet_lake": [varied, perfect]}, "Episodes per point", per="point")
    assert "only 10 episodes per point" in curve and "protonet_lake scored the same in every episode at some" in curve
    # where one click cannot reach 100 episodes, the note does not ask for them
    capped = few_episodes_note({"maml_lake": [varied]}, "Episodes per point", per="point", most=20)
    assert "Raise Episodes per point (here to 20 at most" in capped and "to 100 or more" not in capped
    stuck = few_episodes_note({"maml_lake": [varied]}, "Episodes per point", per="point", most=10)
    assert "Fewer models, classes or shots" in stuck and "Raise" not in stuck


def test_a_task_with_few_queries_says_what_one_query_is_worth():
    assert "10 points" in few_queries_note(10)
    assert few_queries_note(0) == ""


def test_each_model_keeps_one_colour_and_every_chart_has_a_legend():
    names = [e.name for e in shipped_models()]
    colours = model_colours(names)
    assert list(colours) == names and len(set(colours.values())) == len(names)  # all 15 told apart
    assert model_colours(names[:3]) == {n: colours[n] for n in names[:3]}  # the same models, the same colours

    bars = score_bars(["b", "a"], [0.5, 0.9], "accuracy", "accuracy (%)", errors=[0.1, 0.0], colours=colours_of("ab"))
    assert bars.layout.showlegend
    by_name = {t.name: t for t in bars.data}
    assert {n: t.marker.color for n, t in by_name.items()} == colours_of("ab")
    assert list(by_name["a"].text) == ["90.0, same in every episode"] and list(by_name["b"].text) == ["50.0 ± 10.0"]

    one = accuracy_curves({"b": ([1, 2], [0.5, 0.6], [0.1, 0.1])}, "shots", "curve", colours=colours_of("ab"))
    assert one.layout.showlegend and one.data[0].line.color == colours_of("ab")["b"]
    assert one.data[0].marker.color == colours_of("ab")["b"]


def test_model_names_stay_text_in_the_charts():
    name = "<b>bold</b>"
    bars = score_bars([name], [0.5], "t", "x", colours=model_colours([name]))
    assert bars.data[0].name == "&lt;b&gt;bold&lt;/b&gt;" and list(bars.data[0].y) == ["&lt;b&gt;bold&lt;/b&gt;"]
    curves = accuracy_curves({name: ([1], [0.5], [0.1])}, "x", "t", colours=model_colours([name]))
    assert curves.data[0].name == "&lt;b&gt;bold&lt;/b&gt;"


def colours_of(names: str) -> dict[str, str]:
    return model_colours(list(names))

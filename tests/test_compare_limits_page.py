"""The compare page says beside its controls how much work a click would start, and refuses too much."""

from __future__ import annotations

import re

import pytest
from test_explore_compare_pages import chart, charts, drawn_task

from playground.evaluation.compare import MAX_WORK_PER_CLICK


def messages(at, kind: str) -> str:
    return " ".join(e.value for e in getattr(at, kind))


def button(at, key: str):
    (found,) = [b for b in at.button if b.key == key]
    return found


@pytest.mark.omniglot
def test_the_issues_benchmark_is_refused_beside_its_controls_and_a_small_one_is_not(omniglot):
    at = drawn_task(k=1, models=["protonet_lake", "maml_lake", "pixel_nn"])
    at.switch_page("pages/compare.py").run()
    assert not at.exception, at.exception
    cap = f"of the {MAX_WORK_PER_CLICK:,} one click may start"
    # each model's pace was measured when it was loaded, so the work comes in seconds too
    time = r"about \d+ s|under a second"
    assert re.search(
        rf"This run: ({time}) on this server \(about [\d,]+ image passes, {cap}\)", messages(at, "caption")
    )
    assert re.search(rf"These curves: ({time}) on this server \(about [\d,]+ image passes", messages(at, "caption"))
    assert "An image pass is one image through one model" in messages(at, "caption")
    assert not button(at, "compare_bench").disabled and "This would take" not in messages(at, "warning")

    # every shipped model, 20-way, 600 episodes: a core held for over 6.5 minutes before
    at.button(key="compare_all").click().run()
    at.number_input(key="compare_way").set_value(20)
    at.slider(key="compare_episodes").set_value(600)
    at.run()
    assert not at.exception, at.exception
    assert button(at, "compare_bench").disabled
    warning = messages(at, "warning")
    assert f"more than the {MAX_WORK_PER_CLICK:,} one click may start" in warning
    assert "Choose fewer models (the costliest here: " in warning and "fewer classes or fewer shots" in warning

    # fewer episodes alone cannot bring 15 models at 20-way under the cap; two cheap models at 5-way can
    # (AppTest has dropped the sidebar from its tree by now: the choice is made as its callback makes it)
    at.session_state["model_choice"] = at.session_state["model_choice_widget"] = ["protonet_lake", "pixel_nn"]
    at.number_input(key="compare_way").set_value(5).run()
    assert not button(at, "compare_bench").disabled, messages(at, "warning")


@pytest.mark.omniglot
def test_curves_over_the_cap_say_how_many_episodes_per_point_fit(omniglot):
    at = drawn_task(k=1, models=["maml_lake"])
    at.switch_page("pages/compare.py").run()
    assert not button(at, "compare_curves").disabled  # the page's defaults fit
    at.slider(key="compare_curve_episodes").set_value(200).run()
    assert not at.exception, at.exception
    assert button(at, "compare_curves").disabled
    assert "Lower the episodes per point to " in messages(at, "warning")


@pytest.mark.omniglot
def test_few_episodes_are_called_so_and_each_model_keeps_its_colour_with_a_legend(omniglot):
    at = drawn_task(k=2, models=["protonet_lake", "maml_lake", "pixel_nn"])
    at.switch_page("pages/compare.py").run()
    at.button(key="compare_task").click().run()  # leave-one-out: 2 examples of each of 3 classes
    assert "each one right or wrong moves a model's accuracy by 17 points" in messages(at, "caption")
    at.number_input(key="compare_way").set_value(2)  # small episodes: the test is about what is said, not speed
    at.slider(key="compare_episodes").set_value(10)
    at.button(key="compare_bench").click().run()
    assert not at.exception, at.exception
    note = messages(at, "info")
    assert "only 10 episodes per model" in note and "Raise Episodes to 100 or more" in note
    shown = " ".join(at.dataframe[1].value["accuracy"]) + " ".join(
        t for b in chart(at, "compare_bench_chart")["data"] for t in b["text"]
    )
    assert "± 0.0" not in shown
    at.slider(key="compare_curve_episodes").set_value(10)
    at.slider(key="compare_curve_steps").set_value(2)
    at.button(key="compare_curves").click().run()
    assert not at.exception, at.exception
    assert "only 10 episodes per point" in messages(at, "info")

    figures = charts(at)
    assert len(figures) == 5  # task accuracy and time, benchmark, shots and steps curves
    colours = {}
    for key, fig in figures.items():
        assert fig["layout"]["showlegend"], f"{key} has no legend"
        for trace in fig["data"]:
            colour = trace["marker"]["color"]
            assert colours.setdefault(trace["name"], colour) == colour, f"{trace['name']} changes colour in {key}"
    assert set(colours) == {"protonet_lake", "maml_lake", "pixel_nn"} and len(set(colours.values())) == 3

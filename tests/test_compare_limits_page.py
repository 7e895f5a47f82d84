"""The compare page says beside its controls how much work a click would start, and refuses too much."""

from __future__ import annotations

import re

import pytest
from test_explore_compare_pages import drawn_task

from playground.compare import MAX_WORK_PER_CLICK


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
    assert re.search(rf"This run: about [\d,]+ image passes, {cap}", messages(at, "caption"))
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

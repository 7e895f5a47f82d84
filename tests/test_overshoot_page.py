"""Adapt and predict warns, naming the model and what to lower, when adaptation overshoots without a NaN."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

APP = "../app.py"


@pytest.mark.omniglot
def test_top_of_the_ranges_warns_and_the_cards_settings_do_not(omniglot):
    from playground.interactive.sample_tasks import sample_user_task
    from playground.ui.session import Query
    from playground.zoo.shipped import shipped_models

    entry = next(m for m in shipped_models() if m.name == "maml_lake")
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.multiselect(key="model_choice_widget").set_value(["maml_lake"]).run()
    sampled = sample_user_task(omniglot, 20, 5, 1, seed=0)
    at.session_state["task"] = sampled.task
    queries = zip(sampled.queries, sampled.query_labels)
    at.session_state["queries"] = [Query(img, label, "Omniglot") for img, label in queries]
    at.switch_page("pages/adapt_predict.py").run()
    assert not at.exception, at.exception
    steps, rate = at.slider(key="opt-maml_lake-n_steps-20x5"), at.number_input(key="opt-maml_lake-inner_lr-20x5")
    card = entry.adapt_defaults(20, 5)
    assert steps.value == card["n_steps"] and rate.value == pytest.approx(card["inner_lr"])

    at.button(key="adapt").click().run()
    assert not at.exception, at.exception
    assert not [w for w in at.warning if "overshot" in w.value]
    assert list(status(at)) == ["ok"]

    steps, rate = at.slider(key="opt-maml_lake-n_steps-20x5"), at.number_input(key="opt-maml_lake-inner_lr-20x5")
    steps.set_value(int(steps.max))  # 50
    rate.set_value(float(rate.max))  # 4.0
    at.button(key="adapt").click().run()
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning if "overshot" in w.value]
    assert warning.replace("\\", "").startswith("**MAML**") and "Lower the inner learning rate" in warning
    assert "fewer inner steps" in warning and not at.error  # not NaN: no "diverged" error
    assert list(status(at)) == ["overshot: see the warning above"]
    (result,) = at.session_state["results"]["results"]
    assert result.accuracy < 0.3  # chance is 5%: this is what the person is warned about


def status(at):
    return next(d.value for d in at.dataframe if "status" in d.value.columns)["status"]

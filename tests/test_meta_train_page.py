"""Meta-train live in the app (AppTest): a run's model joins its own session's model list, never another's."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

pytestmark = [pytest.mark.omniglot, pytest.mark.slow]  # a live training run

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_a_trained_model_is_its_sessions_only(omniglot):
    mine, other = AppTest.from_file(APP, default_timeout=60), AppTest.from_file(APP, default_timeout=60)
    for at in (mine, other):
        at.run()
        at.switch_page("pages/meta_train.py").run()
        assert not at.exception
    mine.segmented_control(key="live_budget").set_value(20).run()
    mine.button(key="live_start").set_value(True).run()
    assert not mine.exception
    assert mine.session_state["live_job"].settings.budget == 20
    # Stopped once it has a model (its first snapshot), the job leaves that model, as a finished one does.
    deadline = time.monotonic() + 300  # set-up and the first snapshot on a busy shared CPU
    while not mine.session_state["live_job"].view().has_model and time.monotonic() < deadline:
        time.sleep(1)
        mine.run()
    mine.button(key="live_stop").click().run()
    while not mine.session_state["live_job"].view().finished and time.monotonic() < deadline:
        time.sleep(1)
        mine.run()
    assert mine.session_state["live_job"].view().state == "stopped"
    mine.run()
    assert not mine.exception
    own = list(mine.session_state["own_models"])
    assert len(own) == 1 and own[0] in mine.session_state["model_choice"]
    # AppTest runs a switched-to page alone; the sidebar is drawn by the app's own script.
    mine.switch_page("app.py").run()
    picker = mine.multiselect(key="model_choice_widget")
    assert any("Your ProtoNet (20 s)" in label for label in picker.options), picker.options
    assert own[0] in picker.value  # chosen in the picker the visitor sees, not only in the session's state
    other.switch_page("app.py").run()
    assert "own_models" not in other.session_state or not other.session_state["own_models"]
    assert not any("Your" in label for label in other.multiselect(key="model_choice_widget").options)
    # Its own session adapts with it on Adapt and predict.
    mine.switch_page("pages/adapt_predict.py").run()
    assert not mine.exception

"""Self-test of the real-browser harness (tests/browser.py) on a tiny app, not the project's app."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from browser import (
    browser,
    click_button,
    draw_strokes_on_canvas,
    open_app,
    page_exceptions,
    require_chromium,
    screenshot,
    streamlit_server,
    wait_for_text,
)

pytestmark = pytest.mark.browser  # quick: its own one-page app; the app's end-to-end tests are marked slow

APP = textwrap.dedent(
    """
    import numpy as np
    import streamlit as st
    from streamlit_drawable_canvas import st_canvas

    st.title("harness self-test")
    st.session_state.setdefault("clicks", 0)
    if st.button("Press me"):
        st.session_state.clicks += 1
    st.write(f"clicks={st.session_state.clicks}")

    result = st_canvas(
        stroke_width=10, stroke_color="#000000", drawing_mode="freedraw", height=200, width=200,
        update_streamlit=True, return_image_data=True, key="c",
    )
    image = result.image_data
    strokes = len((result.json_data or {}).get("objects", []))
    inked = 0 if image is None else int((np.asarray(image)[..., 3] > 0).sum())
    st.write(f"strokes={strokes} inked={inked}")
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require_chromium()
    app = tmp_path_factory.mktemp("harness_app") / "app.py"
    app.write_text(APP)
    with streamlit_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def driver(server):
    with browser() as d:
        yield d


def test_page_loads_button_click_and_screenshot(server, driver):
    open_app(driver, server)
    wait_for_text(driver, "harness self-test")
    wait_for_text(driver, "clicks=0")
    click_button(driver, "Press me")
    wait_for_text(driver, "clicks=1")
    click_button(driver, "Press me")
    wait_for_text(driver, "clicks=2")
    assert page_exceptions(driver) == []
    path = screenshot(driver, "harness-button")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(AssertionError, match="timed out waiting for text 'never shown'") as failure:
        wait_for_text(driver, "never shown", timeout=0.5)
    # the timeout saved a screenshot for debugging; this one was expected, so drop it
    shot = Path(re.search(r"screenshot: (\S+)", str(failure.value)).group(1))
    assert shot.is_file()
    shot.unlink()


def test_strokes_reach_python_after_each_stroke(server, driver):
    open_app(driver, server)
    wait_for_text(driver, "strokes=0 inked=0")
    draw_strokes_on_canvas(driver, 0, [[(20, 20), (180, 180)]])
    first = int(re.search(r"strokes=1 inked=(\d+)", wait_for_text(driver, re.compile(r"strokes=1 inked=\d+"))).group(1))
    assert first > 500
    draw_strokes_on_canvas(driver, 0, [[(180, 20), (20, 180)], [(100, 10), (100, 100), (190, 100)]])
    both = wait_for_text(driver, re.compile(r"strokes=3 inked=\d+"))
    assert int(re.search(r"strokes=3 inked=(\d+)", both).group(1)) > first
    screenshot(driver, "harness-canvas")

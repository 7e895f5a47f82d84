from __future__ import annotations

from streamlit.testing.v1 import AppTest


def test_home_page_renders_without_exceptions():
    at = AppTest.from_file("../app.py", default_timeout=60).run()
    assert not at.exception
    assert any("meta-learning playground" in t.value for t in at.title)

"""A fresh clone without data, in a real browser: the first screen offers Omniglot, one click fetches it
from a loopback server with a progress bar, and "Try a sample task" then works without a restart.
Screenshots land in test-artifacts/ (download-*.png)."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest
from data_server import data_server, real_files

from playground.data.download import BASE_URL_ENV, FILES

from browser import (
    browser,
    click_button,
    open_app,
    page_exceptions,
    require_chromium,
    screenshot,
    streamlit_server,
    wait_for_text,
    wait_until_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.omniglot, pytest.mark.slow]


def images_loaded(driver, timeout: float = 30.0) -> None:
    """Wait until every image on the page has arrived, so that a screenshot shows the glyphs."""
    deadline = time.monotonic() + timeout
    script = "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
    while not driver.execute_script(script) and time.monotonic() < deadline:
        time.sleep(0.2)


def test_a_fresh_clone_gets_the_data_in_one_click(tmp_path):
    require_chromium()
    files = real_files()
    if len(files) != len(FILES):
        pytest.skip("the data folder lacks the zips the server would serve")
    data = tmp_path / "data"
    with data_server(files) as root:
        base = f"{root}/slow"  # about 3 MB/s: the progress bar stays long enough to be seen
        assert urlsplit(base).hostname == "127.0.0.1"
        env = {"PLAYGROUND_DATA": str(data), "PLAYGROUND_CACHE": str(tmp_path / "cache"), BASE_URL_ENV: base}
        with streamlit_server("app.py", env) as url, browser(1400, 1000) as driver:
            open_app(driver, url)
            body = wait_for_text(driver, "Download Omniglot (about 14 MB)")
            assert "Try a sample task" not in body and str(data) in body
            screenshot(driver, "download-1-offer")

            click_button(driver, "Download Omniglot")
            wait_for_text(driver, re.compile(r"Downloading \S+\.zip: \d+\.\d of 14\.2 MB"), timeout=30)
            screenshot(driver, "download-2-progress")

            wait_for_text(driver, "Try a sample task", timeout=120)
            wait_until_idle(driver)  # the rerun's last elements replace the first run's
            body = wait_for_text(driver, "Everything that needs them works now")
            assert "Download Omniglot" not in body
            images_loaded(driver)
            screenshot(driver, "download-3-done")

            click_button(driver, "Try a sample task")
            wait_for_text(driver, "green is right", timeout=120)
            wait_until_idle(driver)
            wait_for_text(driver, "ProtoNet")
            screenshot(driver, "download-4-predictions")
            assert not page_exceptions(driver)
    assert sorted(p.name for p in data.iterdir()) == sorted(f.name for f in FILES)

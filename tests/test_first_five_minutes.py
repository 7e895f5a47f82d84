"""A newcomer's first five minutes, in a real browser at 1400x1000: open, Try a sample task, read the
predictions on one screen, then Explore, Compare and Beat the human. A screenshot of each step lands in
test-artifacts/ (first-*.png)."""

from __future__ import annotations

import pytest

from browser import (
    browser,
    click_button,
    open_app,
    open_page,
    page_exceptions,
    require_chromium,
    screenshot,
    wait_for_text,
    wait_until_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.omniglot, pytest.mark.slow]

VIEWPORT = (1400, 1000)


def bottom_of(driver, css: str, index: int) -> float:
    """The bottom edge, in viewport pixels, of the ``index``-th element matching ``css``."""
    return driver.execute_script(
        "const e = document.querySelectorAll(arguments[0])[arguments[1]];"
        "return e ? e.getBoundingClientRect().bottom : -1;",
        css,
        index,
    )


def test_a_newcomers_first_five_minutes(omniglot, app_server):
    require_chromium()
    url = app_server
    with browser(*VIEWPORT) as driver:
        open_app(driver, url)
        body = wait_for_text(driver, "Try a sample task")
        assert "not ready" not in body and "has no examples" not in body  # shows before it tells
        assert "Deploy" not in body  # Streamlit's own menu is not the visitor's business
        screenshot(driver, "first-1-open")

        click_button(driver, "Try a sample task")
        wait_for_text(driver, "green is right", timeout=90)
        wait_until_idle(driver)
        body = wait_for_text(driver, "ProtoNet")
        screenshot(driver, "first-2-predictions")
        # Support set, grid of 10 queries x 3 models: all on the first screen, with no scrolling.
        height = driver.execute_script("return window.innerHeight")
        grid_bottom = bottom_of(driver, "[data-testid='stDataFrame']", 1)
        assert 0 < grid_bottom <= height, f"the prediction grid ends at {grid_bottom}px of {height}"
        assert not page_exceptions(driver)

        open_page(driver, "Explore a model")
        wait_for_text(driver, "prototypes", timeout=60)
        screenshot(driver, "first-3-explore")
        assert not page_exceptions(driver)

        open_page(driver, "Compare models")
        click_button(driver, "Compare on my task")
        wait_until_idle(driver, timeout=90)
        screenshot(driver, "first-4-compare")
        assert not page_exceptions(driver)

        open_page(driver, "Beat the human")
        wait_for_text(driver, "Your turn", timeout=60)
        screenshot(driver, "first-5-beat-the-human")
        assert not page_exceptions(driver)

"""Meta-train live in a real browser at 1400x1000: a 20-second ProtoNet run whose curves update while it
trains and whose accuracy on the fixed evaluation episodes rises clearly above the random initialisation's;
then the model, listed in the sidebar as the visitor's own, predicts on a sampled task. Screenshots land in
test-artifacts/ (meta-train-*.png)."""

from __future__ import annotations

import re
import time

import pytest

from browser import (
    browser,
    click_button,
    open_app,
    open_page,
    page_exceptions,
    require_chromium,
    screenshot,
    streamlit_server,
    wait_for_text,
    wait_until_idle,
)

# `alone`: the test asks what 20 seconds of training learns.
pytestmark = [pytest.mark.browser, pytest.mark.omniglot, pytest.mark.slow, pytest.mark.alone]

# Each chart's traces as the browser holds them: [title, [[trace name, x values, y values], ...], annotations].
CHARTS_JS = """
return [...document.querySelectorAll('.js-plotly-plot')].map(p => [
  (p.layout && p.layout.title && p.layout.title.text) || '',
  (p.data || []).map(t => [t.name || '', Array.from(t.x || []), Array.from(t.y || [])]),
  ((p.layout && p.layout.annotations) || []).map(a => a.text || ''),
]);
"""


def chart(driver, title: str) -> tuple[list, list[str]] | None:
    """The traces and annotations of the chart titled ``title`` (None until it is drawn). While a rerun
    replaces it, the old one may still be on the page: the one with the most points is the newest."""
    found = [
        (traces, notes)
        for name, traces, notes in driver.execute_script(CHARTS_JS) or []
        if re.sub(r"<[^>]+>", "", name).startswith(title)  # Streamlit's theme makes titles bold
    ]
    return max(found, key=lambda f: sum(len(t[1]) for t in f[0]), default=None)


def probe_points(driver) -> list[float]:
    """The live model's accuracies (%) on the fixed evaluation episodes, one per snapshot drawn so far."""
    drawn = chart(driver, "5-way 1-shot accuracy")
    if drawn is None:
        return []
    return next((list(y) for name, _, y in drawn[0] if name == "your model"), [])


def test_a_twenty_second_protonet_run_learns_and_its_model_predicts(omniglot):
    require_chromium()
    with streamlit_server("app.py") as url, browser(1400, 1000) as driver:
        open_app(driver, url)
        open_page(driver, "Meta-train live")
        wait_for_text(driver, "press Start")
        click_button(driver, "20 s")
        wait_until_idle(driver)
        screenshot(driver, "meta-train-1-ready")

        click_button(driver, "Start")
        # The curves update while it trains: the accuracy chart gains points, at least twice after it appears.
        seen: list[int] = []
        training: list[int] = []
        deadline = time.monotonic() + 240  # set-up, 20 s of training and its snapshots on a busy shared CPU
        while time.monotonic() < deadline:
            points = len(probe_points(driver))
            curve = chart(driver, "Meta-training episodes")
            if points and (not seen or points > seen[-1]):
                seen.append(points)
            if curve is not None:
                training.append(len(curve[0][0][1]))
            if len(seen) == 3:
                screenshot(driver, "meta-train-2-training")
            if "is trained" in driver.execute_script("return document.body.innerText"):
                break
            time.sleep(0.3)
        body = wait_for_text(driver, "is trained", timeout=30)
        assert len(seen) >= 3, f"the accuracy chart was drawn with {seen} points: it should update at least twice"
        assert len(set(training)) >= 3, "the training curve should grow while it trains"
        assert "Your ProtoNet (20 s)" in body
        wait_until_idle(driver)
        time.sleep(1)  # the last figures' relayout
        screenshot(driver, "meta-train-3-trained")
        driver.execute_script(
            "const c = document.querySelectorAll('[data-testid=stPlotlyChart]'); c[c.length - 1].scrollIntoView()"
        )
        time.sleep(0.5)
        screenshot(driver, "meta-train-3-embedding")

        # Its accuracy rose clearly above the random initialisation's, drawn beside it.
        accuracies = probe_points(driver)
        notes = chart(driver, "5-way 1-shot accuracy")[1]
        random_init = next(float(m.group(1)) for n in notes if (m := re.match(r"random initialisation (\d+)%", n)))
        assert any(n.startswith("shipped model") for n in notes), notes
        assert accuracies[-1] > random_init + 10, (random_init, accuracies)

        # The model is the visitor's own, chosen in the sidebar's list; it predicts on a sampled task.
        sidebar = driver.find_element("css selector", "[data-testid='stSidebar']").text
        assert "Your ProtoNet (20 s)" in sidebar, sidebar
        click_button(driver, "Try it on a sample task")
        wait_for_text(driver, "green is right", timeout=120)
        wait_until_idle(driver)
        screenshot(driver, "meta-train-4-predictions")
        main = driver.find_element("css selector", "[data-testid='stMain']").text
        assert "Your ProtoNet (20 s) →" in main, main[-2000:]  # its pick, named as in the sidebar
        assert not page_exceptions(driver)

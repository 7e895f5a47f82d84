"""The camera in a real Chromium: a fake camera plays a photo of a glyph on paper; "Take Photo" on
Build a task's Camera tab adds it to the picked class, and on Adapt and predict adds a query."""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
from photos import paper_photo
from PIL import Image, ImageDraw

from browser import (
    browser,
    click_button,
    fake_camera_flags,
    open_app,
    open_page,
    page_exceptions,
    require_chromium,
    screenshot,
    wait_for_text,
    wait_until_idle,
    write_y4m,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def glyph(strokes: list[list[tuple[float, float]]], size: int = 105) -> np.ndarray:
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for stroke in strokes:
        draw.line([(x * size, y * size) for x, y in stroke], fill=255, width=5, joint="curve")
    return np.asarray(img) > 0


def camera_file(tmp_path, glyphs: list[np.ndarray], **photo) -> str:
    """A Y4M video of a photo of ``glyphs`` on paper, for Chromium's fake camera."""
    rgb = np.asarray(Image.open(io.BytesIO(paper_photo(glyphs, **photo))).convert("RGB"))
    return str(write_y4m(tmp_path / "camera.y4m", rgb))


def choose_shown(driver, label: str, option: str) -> None:
    """Pick ``option`` in the visible selectbox labelled ``label`` (other tabs hold boxes of the same label)."""
    (box,) = [b for b in driver.find_elements("xpath", f"//input[@aria-label='{label}']") if b.is_displayed()]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
    box.click()
    wait_for_text(driver, option)
    options = [o for o in driver.find_elements("xpath", "//*[@role='option']") if o.text.strip() == option]
    options[0].click()
    wait_until_idle(driver)


def open_tab(driver, label: str) -> None:
    tab = driver.find_element("xpath", f"//*[@role='tab'][normalize-space(.)='{label}']")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", tab)
    wait_until_idle(driver)


def take_photo(driver, shows: str | re.Pattern) -> None:
    """Press "Take Photo", and again until the page ``shows`` what the photo brings (the camera holding a
    photo, "Clear photo", is taken as on its way).

    A press while the rerun of a moment ago (choosing the class) replaces the camera takes nothing, as it
    would for a person, who presses again; on a busy machine that rerun starts late."""
    playing = "return [...document.querySelectorAll('video')].some(v => v.readyState >= 2 && v.videoWidth > 0)"

    def shown() -> bool:
        text = driver.execute_script("return document.body.innerText")
        return bool(shows.search(text)) if isinstance(shows, re.Pattern) else shows in text

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if driver.execute_script(playing):
            click_button(driver, "Take Photo", timeout=60)
            pressed = time.monotonic()
            while time.monotonic() < pressed + 10:
                if shown():
                    return
                if any(b.is_displayed() for b in driver.find_elements("xpath", "//button[.='Clear photo']")):
                    wait_for_text(driver, shows, timeout=60)
                    return
                time.sleep(0.2)
        time.sleep(0.2)
    raise AssertionError(f"no photo brought {shows!r}")


def counts(driver) -> list[int]:
    """Each class's example count, from its "n / 5" figure."""
    text = driver.execute_script("return document.body.innerText")
    return [int(n) for n in re.findall(r"^(\d) / \d$", text, re.M)]


def test_a_photo_from_the_camera_becomes_an_example_and_a_query(tmp_path, app_server):
    require_chromium()
    video = camera_file(tmp_path, [glyph([[(0.2, 0.2), (0.8, 0.25), (0.5, 0.8)], [(0.3, 0.6), (0.75, 0.65)]])])
    url = app_server
    with browser(1400, 1000, extra_flags=fake_camera_flags(video)) as driver:
        open_app(driver, url)
        open_tab(driver, "Camera")
        choose_shown(driver, "Add to class", "B")
        take_photo(driver, "Added a photo to 'B'")
        wait_until_idle(driver)
        assert counts(driver) == [0, 1, 0]
        assert not page_exceptions(driver)
        # The tab and the picked class stay: the next photo goes to B as well.
        take_photo(driver, re.compile(r"^2 / 5$", re.M))
        assert counts(driver) == [0, 2, 0]
        screenshot(driver, "camera-build-task")
        heading = driver.find_element("xpath", "//h3[contains(., 'Your task')]")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", heading)
        screenshot(driver, "camera-build-task-examples")

        # Finish the task (A gets a photo, C goes), then photograph a query.
        open_tab(driver, "Camera")
        choose_shown(driver, "Add to class", "A")
        take_photo(driver, "Added a photo to 'A'")
        remove = [b for b in driver.find_elements("xpath", "//button[normalize-space(.)='Remove class']")]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click()", remove[-1])
        wait_for_text(driver, "Task ready", timeout=60)
        wait_until_idle(driver)
        assert counts(driver) == [1, 2]
        open_page(driver, "Adapt and predict")
        open_tab(driver, "Camera")
        take_photo(driver, "Q1")
        wait_until_idle(driver)
        assert not page_exceptions(driver)
        screenshot(driver, "camera-adapt-predict")


def test_a_photo_of_several_glyphs_gets_a_message_and_keeps_the_task(tmp_path, app_server):
    require_chromium()
    a = glyph([[(0.2, 0.2), (0.8, 0.25), (0.5, 0.8)]])
    b = glyph([[(0.5, 0.1), (0.5, 0.9)], [(0.2, 0.5), (0.8, 0.3)]])
    video = camera_file(tmp_path, [a, b, a], fill=0.25, gap=0.6)
    url = app_server
    with browser(1400, 1000, extra_flags=fake_camera_flags(video)) as driver:
        open_app(driver, url)
        open_tab(driver, "Camera")
        take_photo(driver, "3 glyphs side by side")
        wait_until_idle(driver)
        assert counts(driver) == [0, 0, 0]
        assert not page_exceptions(driver)
        screenshot(driver, "camera-several-glyphs")

"""Shared task files are untrusted: their names are shown as text, their size of class is the app's.

A class name is visitor-supplied text. Rendered as markdown or as Plotly's HTML subset it could
make whoever imports the file fetch from a third party, follow a link of the author's choosing, or
see the page restyled. These tests import such names and check they are only ever shown.
"""

from __future__ import annotations

import http.server
import io
import json
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from playground.figures.charts import plot_text, probability_bars
from playground.interactive.task_io import FORMAT, MAX_EXAMPLES_PER_CLASS, UserTask, export_task_zip
from playground.ui.display import WORD_JOINER, plain, short_names

APP = "../app.py"
PUNCTUATION = r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"""


def hostile_names(host: str) -> list[str]:
    return [f"![t]({host}/x.png)", f"[click me]({host}/go)", ":red[loud] $x^2$ <b>bold</b>"]


def glyph(kind: int) -> np.ndarray:
    """28x28, ink = 255: a bar, a cross or a ring."""
    img = np.zeros((28, 28), np.uint8)
    if kind == 0:
        img[4:24, 12:16] = 255
    elif kind == 1:
        img[12:16, 4:24] = 255
        img[4:24, 12:16] = 255
    else:
        yy, xx = np.mgrid[:28, :28]
        img[(np.hypot(yy - 14, xx - 14) > 6) & (np.hypot(yy - 14, xx - 14) < 10)] = 255
    return img


def unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in PUNCTUATION:
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


@pytest.mark.parametrize("name", hostile_names("http://127.0.0.1:9") + ["a\\b*c*", "1. list\n# heading", "βeta ✓"])
def test_plain_escapes_every_markdown_mark_and_keeps_the_text(name):
    escaped = plain(name)
    i = 0
    while i < len(escaped):  # every punctuation mark is escaped: markdown sees no syntax at all
        if escaped[i] == "\\":
            assert escaped[i + 1] in PUNCTUATION
            i += 2
            continue
        assert escaped[i] not in PUNCTUATION and escaped[i] not in "\r\n", escaped
        i += 1
    assert unescape(escaped).replace(WORD_JOINER, "") == name.replace("\n", " ")
    assert "http:" not in escaped and "www." not in escaped  # bare addresses are not linked either


def test_plotly_labels_show_names_as_text():
    name = '<a href="http://127.0.0.1:9/go">x</a><b>y</b>'
    assert plot_text(name) == '&lt;a href="http://127.0.0.1:9/go"&gt;x&lt;/a&gt;&lt;b&gt;y&lt;/b&gt;'
    fig = probability_bars([0.5, 0.5], [name, "plain"], 0)
    assert "<a" not in "".join(fig.data[0].y)


def task_zip(names: list[str], shots: list[int]) -> bytes:
    return export_task_zip(UserTask(list(names), [[glyph(i % 3)] * k for i, k in enumerate(shots)]))


def import_on_build_page(at: AppTest, data: bytes, filename: str = "shared.zip") -> AppTest:
    nonce = at.session_state["nonce"]
    at.file_uploader(key=f"import-{nonce}").set_value((filename, data, "application/zip"))
    at.run()
    at.button(key="import_button").click()
    return at.run()


def markdown_shown(at: AppTest) -> str:
    parts = [e.value for kind in ("error", "warning", "success", "info", "markdown", "caption") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def test_a_class_with_more_examples_than_the_app_holds_is_refused_on_import():
    """A task file with six examples in a class used to import, then crash the page on every visit."""
    at = AppTest.from_file(APP, default_timeout=120).run()
    buf = io.BytesIO()
    files = [f"a/{i}.png" for i in range(MAX_EXAMPLES_PER_CLASS + 1)]
    with zipfile.ZipFile(buf, "w") as zf:
        manifest = {
            "format": FORMAT,
            "version": 1,
            "classes": [{"name": "a", "files": files}, {"name": "b", "files": []}],
        }
        zf.writestr("task.json", json.dumps(manifest))
        png = io.BytesIO()
        Image.fromarray(255 - glyph(0)).save(png, "PNG")
        for f in files:
            zf.writestr(f, png.getvalue())
    import_on_build_page(at, buf.getvalue(), "six.zip")
    assert not at.exception
    assert any(f"at most {MAX_EXAMPLES_PER_CLASS}" in e.value and plain("six.zip") in e.value for e in at.error)
    assert at.session_state["task"].class_names == ["A", "B", "C"]  # the task before the import is kept
    assert at.button(key="add_class")  # the page is drawn to its end


def test_imported_names_are_shown_as_text_in_messages_and_predictions():
    names = hostile_names("http://127.0.0.1:9")
    at = AppTest.from_file(APP, default_timeout=120).run()
    import_on_build_page(at, task_zip(names, [1, 1, 0]), "[zip](http://127.0.0.1:9/z).zip")
    assert not at.exception
    shown = markdown_shown(at)
    assert plain(names[2]) in shown  # "has no examples" names the class, escaped
    assert plain("[zip](http://127.0.0.1:9/z).zip") in shown
    assert "](http" not in shown and ":red[" not in shown and "<b>" not in shown

    import_on_build_page(at, task_zip(names, [1, 1, 1]))
    at.switch_page("pages/adapt_predict.py").run()
    from playground.ui.session import Query

    at.session_state["queries"] = [Query(glyph(k), k, "test") for k in range(3)]
    at.run()
    at.button(key="adapt").click().run()
    assert not at.exception
    shown = markdown_shown(at)
    assert "](http" not in shown and ":red[" not in shown and "<b>" not in shown
    # The prediction grid is a table of plain text; the charts escape names as Plotly labels.
    grid = next(d.value for d in at.dataframe if "true class" in d.value.columns)
    assert set(grid["true class"]) == set(short_names(names, 20))
    labels = [
        str(y) for chart in at.get("plotly_chart") for t in json.loads(chart.proto.spec)["data"] for y in t.get("y", [])
    ]
    assert any("&lt;b&gt;bold&lt;/b&gt;" in y for y in labels) and not any("<b>" in y for y in labels)


class Listener(http.server.ThreadingHTTPServer):
    """A loopback HTTP server that records every request made to it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                listener.requests.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.mark.browser
@pytest.mark.slow
def test_a_shared_task_file_cannot_make_the_browser_fetch_or_link_elsewhere(tmp_path, app_server):
    from browser import (
        browser,
        click_button,
        open_app,
        page_exceptions,
        require_chromium,
        screenshot,
        wait_for_text,
        wait_until_idle,
    )

    require_chromium()
    listener = Listener()
    try:
        names = hostile_names(listener.url)
        path = tmp_path / "shared.zip"
        path.write_bytes(task_zip(names, [0, 0, 1]))  # the empty classes are named in a warning
        url = app_server
        with browser() as driver:
            open_app(driver, url)
            tab = driver.find_element("xpath", "//*[@role='tab'][normalize-space(.)='Import / export']")
            driver.execute_script("arguments[0].click()", tab)
            (upload,) = [
                e
                for e in driver.find_elements("css selector", "input[type=file]")
                if "zip" in e.get_attribute("accept")
            ]
            upload.send_keys(str(path))
            wait_until_idle(driver)
            click_button(driver, "Import")
            wait_for_text(driver, "Imported")
            wait_for_text(driver, "/go)' has no examples")
            wait_until_idle(driver)
            body = driver.find_element("tag name", "body").text.replace(WORD_JOINER, "")
            screenshot(driver, "hostile-names")
            assert names[0] in body and names[1] in body  # the names, literally
            assert not page_exceptions(driver)
            links = driver.execute_script(
                "return [...document.querySelectorAll('a[href], img[src]')].map(e => e.href || e.src)"
            )
            assert not [u for u in links if listener.url in u], links
    finally:
        listener.shutdown()
    assert listener.requests == []

"""Real-browser end-to-end helpers: a Streamlit server plus a headless Chromium driven by Selenium.

A plain helper module, not a test file (``tests/conftest.py`` puts ``tests/`` on ``sys.path``)::

    from browser import browser, click_button, open_app, require_chromium, streamlit_server, wait_for_text

    @pytest.mark.browser
    def test_something(tmp_path):
        require_chromium()  # skips locally without Chromium, fails when CI is set
        with streamlit_server("app.py") as url, browser() as driver:
            open_app(driver, url)
            click_button(driver, "Go")
            wait_for_text(driver, "done")

Chromium and its driver are Debian's (``apt-get install chromium chromium-driver``); Playwright's
own browser download is not used. Override the paths with ``PLAYGROUND_CHROMIUM`` and
``PLAYGROUND_CHROMEDRIVER``.

Canvas drawing works for both kinds of Streamlit custom components: v2 components (what
streamlit-drawable-canvas >= 0.12 is) render inline, inside a shadow root, with no iframe; v1
components (older releases) render inside an ``<iframe>``. :func:`draw_strokes_on_canvas` finds
the canvas in either, and sends real W3C pointer events (press, many small moves, release).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts"

CHROMIUM = os.environ.get("PLAYGROUND_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PLAYGROUND_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    # Containers often have a 64 MB /dev/shm, where Chromium's renderer crashes; use /tmp instead.
    "--disable-dev-shm-usage",
)
INSTALL_HINT = "apt-get install -y chromium chromium-driver, and pip install -r requirements.txt"

Point = tuple[float, float]


# --- availability -------------------------------------------------------------------------------


def in_ci() -> bool:
    """True when the CI environment variable is set to something truthy (e.g. ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def chromium_unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not installed ({INSTALL_HINT})"
    for what, path in (("Chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{what} not found at {path} ({INSTALL_HINT})"
    return None


def chromium_available() -> bool:
    return chromium_unavailable_reason() is None


def chromium_skip_reason() -> str:
    """A skip reason for ``pytest.mark.skipif(not chromium_available(), reason=...)``; "" when available."""
    reason = chromium_unavailable_reason()
    return f"browser test skipped: {reason}" if reason else ""


def require_chromium() -> None:
    """Call at the start of a browser test (or in a fixture): skip locally, FAIL under CI, when
    Chromium, chromedriver or selenium is missing. CI (``.ci/run``) installs them, so a missing
    browser there is a broken setup, not a reason to skip."""
    import pytest

    reason = chromium_unavailable_reason()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI is set, so the browser tests must run, but {reason}", pytrace=False)
    pytest.skip(f"browser test skipped: {reason}")


# --- the Streamlit server -----------------------------------------------------------------------


class StreamlitServer(str):
    """The server's base URL (a ``str``, e.g. ``http://127.0.0.1:41234``) with its process and logs."""

    process: subprocess.Popen
    port: int
    _log: Any

    def logs(self, limit: int = 8000) -> str:
        """The last ``limit`` characters of the server's stdout and stderr (merged)."""
        return _read_tail(self._log, limit)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_tail(log, limit: int) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-limit:]


def _health_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    try:
        with opener.open(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


def _stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # The group may outlive its leader (children of the app); make sure nothing is left.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


@contextlib.contextmanager
def streamlit_server(
    app_path: str | os.PathLike,
    env: Mapping[str, str | None] | None = None,
    *,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
) -> Iterator[StreamlitServer]:
    """Run ``streamlit run APP`` on a free loopback port, with cwd at the repo root; yield its base URL.

    ``app_path`` is relative to the repo root or absolute. ``env`` adds to (a ``None`` value removes
    from) the inherited environment. Waits until ``/_stcore/health`` answers ``ok``; raises
    RuntimeError with the server's output if it exits first or is not healthy within ``timeout``
    seconds. On exit the server's whole process group is terminated.
    """
    app = Path(app_path)
    if not app.is_absolute():
        app = REPO_ROOT / app
    if not app.is_file():
        raise FileNotFoundError(f"no Streamlit app at {app}")

    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH")) if p)
    full_env["PYTHONUNBUFFERED"] = "1"
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value

    for _attempt in range(3):  # the free port can be taken between choosing it and binding it
        port = free_port()
        cmd = [
            sys.executable, "-m", "streamlit", "run", str(app),
            "--server.port", str(port),
            "--server.address", "127.0.0.1",
            "--server.headless", "true",
            "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",  # no reloads mid-test, and no watcher threads
            *extra_args,
        ]  # fmt: skip
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=full_env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            if _health_ok(url):
                break
            if proc.poll() is not None:
                output = _read_tail(log, 8000)
                log.close()
                if re.search(r"(port \d+ is already in use|address already in use)", output, re.I):
                    break  # try another port
                raise RuntimeError(f"streamlit exited with code {proc.returncode} before it was healthy:\n{output}")
            if time.monotonic() > deadline:
                _stop_process_group(proc)
                output = _read_tail(log, 8000)
                log.close()
                raise RuntimeError(f"streamlit was not healthy at {url} after {timeout:.0f} s:\n{output}")
            time.sleep(0.25)
        if proc.poll() is None:
            break
    else:
        raise RuntimeError("could not start streamlit: every port tried was already in use")

    server = StreamlitServer(url)
    server.process, server.port, server._log = proc, port, log
    try:
        yield server
    finally:
        _stop_process_group(proc)
        log.close()


# --- the browser --------------------------------------------------------------------------------


@contextlib.contextmanager
def browser(
    width: int = 1400,
    height: int = 1000,
    *,
    page_load_timeout: float = 60.0,
    extra_flags: Sequence[str] = (),
    download_dir: str | os.PathLike | None = None,
) -> Iterator[Any]:
    """A headless Chromium (selenium ``WebDriver``) with a fresh temporary profile, quit on exit.

    ``extra_flags`` are added to CHROMIUM_FLAGS, e.g. :func:`fake_camera_flags` for a camera; files it
    downloads land in ``download_dir`` when given."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    user_data_dir = tempfile.mkdtemp(prefix="playground-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with both paths given, Selenium Manager never runs
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={width},{height}")
    for flag in extra_flags:
        options.add_argument(flag)
    if download_dir is not None:
        prefs = {"download.default_directory": str(download_dir), "download.prompt_for_download": False}
        options.add_experimental_option("prefs", prefs)
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(page_load_timeout)
        if download_dir is not None:  # headless Chromium also needs to be told through the DevTools protocol
            behavior = {"behavior": "allow", "downloadPath": str(download_dir)}
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", behavior)
        yield driver
    finally:
        if driver is not None:
            with contextlib.suppress(Exception):
                driver.quit()
        shutil.rmtree(user_data_dir, ignore_errors=True)


def fake_camera_flags(video: str | os.PathLike) -> tuple[str, ...]:
    """Chromium flags that make ``video`` (a .y4m or .mjpeg file, played in a loop) the camera, and
    grant camera access without asking."""
    return (
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    )


def write_y4m(path: str | os.PathLike, rgb: Any, frames: int = 2) -> Path:
    """Write an HxWx3 uint8 RGB array as a Y4M video (4:2:0, ``frames`` identical frames) for
    :func:`fake_camera_flags`; H and W must be even."""
    import numpy as np

    rgb = np.asarray(rgb, dtype=np.float32)
    h, w = rgb.shape[:2]
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b  # full-range BT.601, as C420jpeg means
    u = (b - y) * 0.564 + 128
    v = (r - y) * 0.713 + 128

    def plane(a):
        return np.clip(np.rint(a), 0, 255).astype(np.uint8).tobytes()

    def half(a):
        return a.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    frame = b"FRAME\n" + plane(y) + plane(half(u)) + plane(half(v))
    path = Path(path)
    path.write_bytes(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode() + frame * frames)
    return path


# --- Streamlit page helpers ---------------------------------------------------------------------


def _body_text(driver) -> str:
    return driver.execute_script("return document.body ? document.body.innerText : ''") or ""


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:100] or "screenshot"


def screenshot(driver, name: str) -> Path:
    """Save a PNG of the viewport to ``test-artifacts/<name>.png`` at the repo root; return its path."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS_DIR / f"{_slug(name.removesuffix('.png'))}.png"
    driver.switch_to.default_content()
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"could not save a screenshot to {path}")
    return path


def _timeout(driver, what: str, details: str = "") -> AssertionError:
    try:
        shot = f"\nscreenshot: {screenshot(driver, f'timeout-{what}')}"
    except Exception as e:  # noqa: BLE001 - the screenshot is a courtesy, the timeout is the error
        shot = f"\n(no screenshot: {e})"
    return AssertionError(f"timed out waiting for {what}{details}{shot}")


def wait_until_idle(driver, timeout: float = 60.0, settle: int = 3) -> None:
    """Wait until the app is connected and its script is not running (``settle`` polls 0.1 s apart).

    A rerun triggered a moment ago may not have started yet, so prefer :func:`wait_for_text` on
    something the rerun shows; this is for "the page has finished loading".
    """
    state_js = (
        "const a = document.querySelector('[data-testid=stApp]');"
        "return a ? [a.getAttribute('data-test-script-state'), a.getAttribute('data-test-connection-state')] : null"
    )
    deadline, calm, last = time.monotonic() + timeout, 0, None
    while time.monotonic() < deadline:
        driver.switch_to.default_content()
        last = driver.execute_script(state_js)
        calm = calm + 1 if last and last[0] == "notRunning" and last[1] == "CONNECTED" else 0
        if calm >= settle:
            return
        time.sleep(0.1)
    raise _timeout(driver, "the app to be idle", f" (script, connection state: {last})")


def open_app(driver, url: str, timeout: float = 60.0) -> None:
    """Load ``url`` (the server URL, or a page of it such as ``f"{url}/adapt_predict"``) and wait
    until its first run has finished."""
    driver.get(url)
    wait_until_idle(driver, timeout)


def open_page(driver, title: str) -> None:
    """Go to the app's page ``title`` through the sidebar's navigation, and wait until it has run."""
    driver.find_element("xpath", f"//a[contains(normalize-space(.), '{title}')]").click()
    wait_for_text(driver, title)
    wait_until_idle(driver)


def wait_for_text(driver, text: str | re.Pattern, timeout: float = 30.0) -> str:
    """Wait until the page's visible text contains ``text`` (a substring, or a compiled regex to
    search); return that text. On timeout, save a screenshot and raise AssertionError showing the
    page's text."""
    deadline, body = time.monotonic() + timeout, ""
    while True:
        driver.switch_to.default_content()
        body = _body_text(driver)
        if text.search(body) is not None if isinstance(text, re.Pattern) else text in body:
            return body
        if time.monotonic() > deadline:
            raise _timeout(driver, f"text {text!r}", f"; the page shows:\n{body[-3000:]}")
        time.sleep(0.2)


def page_exceptions(driver) -> list[str]:
    """The text of every exception box (``st.exception`` or an uncaught error) on the page."""
    driver.switch_to.default_content()
    return driver.execute_script(
        "return [...document.querySelectorAll('[data-testid=stException]')].map(e => e.innerText)"
    )


def _xpath_literal(s: str) -> str:
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    return "concat(" + ', "\'", '.join(f"'{part}'" for part in s.split("'")) + ")"


def click_button(driver, label: str, timeout: float = 30.0) -> None:
    """Click the visible, enabled Streamlit button (``st.button``, form submit, download, also in
    the sidebar) whose text is ``label``; a button whose text merely contains ``label`` (e.g. with
    an icon) is used when none matches exactly."""
    from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException

    literal = _xpath_literal(label)
    exact = f"//button[normalize-space(.)={literal}]"
    loose = f"//button[contains(normalize-space(.), {literal})]"
    deadline = time.monotonic() + timeout
    while True:
        driver.switch_to.default_content()
        try:
            for xpath in (exact, loose):
                buttons = [b for b in driver.find_elements("xpath", xpath) if b.is_displayed() and b.is_enabled()]
                if buttons:
                    button = buttons[0]
                    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
                    try:
                        button.click()
                    except ElementClickInterceptedException:
                        driver.execute_script("arguments[0].click()", button)
                    return
        except StaleElementReferenceException:
            pass  # Streamlit re-rendered it; look again
        if time.monotonic() > deadline:
            labels = [b.text for b in driver.find_elements("tag name", "button") if b.text.strip()]
            raise _timeout(driver, f"a button labelled {label!r}", f"; buttons on the page: {labels}")
        time.sleep(0.2)


# --- canvases -----------------------------------------------------------------------------------

# Every <canvas> in document order, looking into open shadow roots (v2 components render there).
_CANVASES_JS = """
const out = [];
const walk = (node) => {
  for (const el of node.children) {
    if (el.tagName === 'CANVAS') out.push(el);
    if (el.shadowRoot) walk(el.shadowRoot);
    walk(el);
  }
};
walk(document);
return out.map(c => {
  const r = c.getBoundingClientRect();
  return [c, c.classList.contains('upper-canvas'), c.classList.contains('lower-canvas'), r.width, r.height];
});
"""


@dataclass
class CanvasRef:
    """A drawable canvas: in the top document (``frame`` None) or inside the iframe ``frame``."""

    frame: Any
    index: int  # among the drawable canvases of its document (see _drawable)


def _drawable(driver, fabric_only: bool) -> list:
    rows = driver.execute_script(_CANVASES_JS) or []
    visible = [r for r in rows if r[3] > 0 and r[4] > 0]
    if fabric_only:  # fabric.js listens on its upper-canvas and paints the lower one
        return [r[0] for r in visible if r[1]]
    return [r[0] for r in visible if not r[2]]


def find_canvas(driver, index: int = 0, timeout: float = 30.0) -> CanvasRef:
    """The ``index``-th drawable canvas on the page: the top document first (shadow roots included),
    then each iframe in order. fabric.js canvases (streamlit-drawable-canvas) take precedence: when
    there is any, only fabric upper-canvases are counted, so charts' canvases do not shift indices."""
    deadline = time.monotonic() + timeout
    while True:
        driver.switch_to.default_content()
        found: list[tuple[Any, int, bool]] = []  # (frame, index in its document, is fabric)
        for frame in [None, *driver.find_elements("tag name", "iframe")]:
            driver.switch_to.default_content()
            try:
                if frame is not None:
                    driver.switch_to.frame(frame)
                fabric = _drawable(driver, True)
                plain = fabric or _drawable(driver, False)
            except Exception:  # noqa: BLE001 - a frame that went away mid-rerun: skip it this round
                continue
            found += [(frame, i, bool(fabric)) for i in range(len(plain))]
        driver.switch_to.default_content()
        if any(f for *_, f in found):
            found = [row for row in found if row[2]]
        if index < len(found):
            return CanvasRef(found[index][0], found[index][1])
        if time.monotonic() > deadline:
            raise _timeout(driver, f"canvas #{index}", f" ({len(found)} drawable canvases on the page)")
        time.sleep(0.25)


def _interpolate(stroke: Sequence[Point], step_px: float) -> list[Point]:
    points = [tuple(map(float, stroke[0]))]
    for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
        n = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / step_px))
        points += [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(1, n + 1)]
    if len(points) == 1:  # a dot: still move a little while pressed, so that a path is made
        points.append((points[0][0] + 1, points[0][1] + 1))
    return points


def draw_strokes_on_canvas(
    driver,
    canvas: int | Any,
    strokes: Sequence[Sequence[Point]],
    *,
    step_px: float = 6.0,
    move_ms: int = 10,
    pause_after_stroke: float = 0.3,
    timeout: float = 30.0,
) -> None:
    """Draw ``strokes`` (each a list of (x, y) points in canvas coordinates, i.e. CSS pixels from
    the canvas's top-left corner) with real mouse events: move to the first point, press, move
    through the points in steps of at most ``step_px`` pixels, release.

    ``canvas`` is an index for :func:`find_canvas`, a :class:`CanvasRef`, an ``<iframe>`` element
    (its first drawable canvas), or a ``<canvas>`` element of the current document. After each
    stroke it waits ``pause_after_stroke`` seconds, so that a component sending data on mouse-up
    (st_canvas with update_streamlit=True) has sent it before the next stroke starts.
    """
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.remote.webelement import WebElement

    if isinstance(canvas, int):
        canvas = find_canvas(driver, canvas, timeout)
    if isinstance(canvas, WebElement) and canvas.tag_name.lower() == "iframe":
        canvas = CanvasRef(canvas, 0)
    if isinstance(canvas, CanvasRef):
        driver.switch_to.default_content()
        if canvas.frame is not None:
            driver.switch_to.frame(canvas.frame)
        candidates = _drawable(driver, True) or _drawable(driver, False)
        if canvas.index >= len(candidates):
            driver.switch_to.default_content()
            raise AssertionError(f"canvas {canvas} is gone")
        element = candidates[canvas.index]
    else:
        element = canvas
    try:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'center'})", element)
        width, height, client_width, client_height = driver.execute_script(
            "const r = arguments[0].getBoundingClientRect();"
            "return [r.width, r.height, arguments[0].clientWidth || r.width, arguments[0].clientHeight || r.height]",
            element,
        )
        sx, sy = width / client_width, height / client_height  # CSS transforms, if any

        def offset(p: Point) -> tuple[int, int]:  # W3C element origin: offsets from the centre
            return round(p[0] * sx - width / 2), round(p[1] * sy - height / 2)

        for stroke in strokes:
            if not stroke:
                continue
            points = _interpolate(stroke, step_px)
            actions = ActionBuilder(driver, duration=move_ms)
            pointer = actions.pointer_action
            pointer.move_to(element, *offset(points[0]))
            pointer.pointer_down()
            for p in points[1:]:
                pointer.move_to(element, *offset(p))
            pointer.pointer_up()
            actions.perform()
            time.sleep(pause_after_stroke)
    finally:
        driver.switch_to.default_content()


def wait_for_download(folder: str | os.PathLike, suffix: str, timeout: float = 60.0) -> Path:
    """The first finished file ending in ``suffix`` that the browser saves in ``folder``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in Path(folder).iterdir() if p.name.endswith(suffix) and p.stat().st_size > 0]
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no {suffix} file was downloaded to {folder} within {timeout:.0f} s: {os.listdir(folder)}")

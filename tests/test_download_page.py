"""The pages' one-click download (playground.ui.data.offer_download), in AppTest, against a loopback server.

The page runs in this process, so the server thread here serves it; ``$PLAYGROUND_DATA_URL`` points at
127.0.0.1 in every test, and the official host is never asked.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from data_server import data_server, real_files
from streamlit.testing.v1 import AppTest

from playground.data.download import BASE_URL_ENV, FILES, base_url
from playground.interactive.task_io import UserTask

pytestmark = pytest.mark.omniglot
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server():
    files = real_files()
    if len(files) != len(FILES):
        pytest.skip("the data folder lacks the zips the server would serve")
    with data_server(files) as root:
        yield root


@pytest.fixture
def empty_data(tmp_path, monkeypatch):
    """An empty data folder and a cache of its own, as on a fresh clone."""
    monkeypatch.setenv("PLAYGROUND_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path / "cache"))
    return tmp_path / "data"


def serve(monkeypatch, url: str) -> None:
    monkeypatch.setenv(BASE_URL_ENV, url)
    assert urlsplit(base_url()).hostname == "127.0.0.1"


def test_the_game_page_downloads_the_runs_and_carries_on(server, empty_data, monkeypatch):
    serve(monkeypatch, f"{server}/good")
    at = AppTest.from_file(str(ROOT / "pages" / "beat_human.py"), default_timeout=120).run()
    assert not at.exception
    assert at.button(key="download").label == "Download Omniglot (about 14 MB)"
    at.button(key="download").click().run()
    assert not at.exception
    assert sorted(p.name for p in empty_data.iterdir()) == sorted(f.name for f in FILES)
    assert any("are in" in s.value for s in at.success)
    assert not [b for b in at.button if b.key == "download"]  # nothing left to offer
    assert at.selectbox(key="lake_run_widget").value == 0  # the game itself, without a restart


def test_a_failed_download_says_why_and_keeps_the_task(server, empty_data, monkeypatch):
    serve(monkeypatch, f"{server}/missing")
    at = AppTest.from_file(str(ROOT / "pages" / "build_task.py"), default_timeout=120).run()
    at.session_state["task"] = UserTask(["mine", "yours"], [[np.full((28, 28), 255, np.uint8)], []])
    at.run()
    assert not at.exception
    at.button(key="download_sample").click().run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "404" in errors and "PLAYGROUND" in errors and "try again" in errors.lower()
    kept = at.session_state["task"]
    assert kept.class_names == ["mine", "yours"] and [len(e) for e in kept.examples] == [1, 0]
    assert not empty_data.exists() or list(empty_data.iterdir()) == []

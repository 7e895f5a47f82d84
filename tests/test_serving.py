"""The app server computes with one torch thread per visitor's run."""

from __future__ import annotations

import threading

import torch
from streamlit.testing.v1 import AppTest

from playground.runtime.threads import SERVING_THREADS, serve_threads


def threads_seen_by_a_new_thread() -> int:
    seen = []

    def run() -> None:
        torch.ones(64, 64) @ torch.ones(64, 64)  # a kernel: torch sets the thread's team up
        seen.append(torch.get_num_threads())

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return seen[0]


def test_threads_started_after_serve_threads_compute_with_one():
    torch.set_num_threads(2)
    assert threads_seen_by_a_new_thread() == 2
    serve_threads()
    assert threads_seen_by_a_new_thread() == SERVING_THREADS == 1


def test_the_app_serves_with_one_thread():
    torch.set_num_threads(2)
    at = AppTest.from_file("../app.py", default_timeout=60).run()
    assert not at.exception, at.exception
    assert threads_seen_by_a_new_thread() == SERVING_THREADS  # as the next visitor's run will

"""On a running server: a benchmark whose visitor has gone stops computing at once."""

from __future__ import annotations

import os
import time

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from browser import streamlit_server
from streamlit_client import StreamlitSession


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_over(pid: int, seconds: float) -> float:
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


@pytest.mark.slow  # a real app server and a benchmark it must stop
@pytest.mark.omniglot
@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads the server's CPU time from /proc")
def test_the_server_stops_a_benchmark_when_its_visitor_leaves(omniglot):
    with streamlit_server("app.py", timeout=120) as url:
        visitor = StreamlitSession(url, timeout=120)
        visitor.rerun()
        visitor.click("Try a sample task")
        run = visitor.rerun(page="Compare models")
        button = run.widget("button", "Run the benchmark")
        assert not button.disabled, run.texts
        # Press it, as the browser does, and leave once MAML (the second default model) is scoring: a closed tab.
        press = BackMsg()
        press.rerun_script.page_script_hash = visitor.page_hash
        press.rerun_script.widget_states.widgets.extend([WidgetState(id=button.id, trigger_value=True)])
        visitor._send(press)
        pid, started, cpu_started = url.process.pid, time.monotonic(), cpu_seconds(url.process.pid)
        done = 0
        while done <= 100:  # 100 episodes of the first model, then the second's
            m = visitor._receive()
            element = m.delta.new_element if m.WhichOneof("type") == "delta" else None
            text = element.progress.text if element is not None and element.WhichOneof("type") == "progress" else ""
            if "model-episodes" in text:
                done = int(text.split()[0])
        visitor.close()
        busy = (cpu_seconds(pid) - cpu_started) / (time.monotonic() - started)  # cores used while scoring
        time.sleep(0.5)  # one MAML episode at 5-way 1-shot takes a fraction of this
        after = cpu_over(pid, 3.0) / 3.0
        log = url.logs()
    assert "Traceback" not in log, log
    # While scoring, the server kept a core busy; after the visitor left it went quiet. Before, it went on
    # scoring a batch of 25 episodes (of every model, however slow) before it noticed.
    print(f"server CPU: {busy:.2f} cores while scoring, {after:.2f} after the visitor left")
    assert after < 0.25 * busy, (busy, after)

"""A minimal Streamlit client speaking the app's own websocket protocol, for load tests.

A browser session costs a whole Chromium; this costs a socket. It does what the Streamlit frontend
does for the widgets the load test uses: opens a session on ``/_stcore/stream``, asks for script
runs (``BackMsg.rerun_script``) carrying the widget states, uploads files the way the frontend does
(``file_urls_request``, then an HTTP PUT with the XSRF cookie and header), follows page navigation,
and reads back every element the run sent (``ForwardMsg.delta``), resolving cached references.

    with StreamlitSession(url) as s:
        run = s.rerun()                                  # the default page
        run = s.upload("Import a task (.zip)", [path])   # set an uploader's files (and rerun)
        run = s.click("Import")                          # press a button
        run = s.rerun(page="Adapt and predict")
        run.markdown, run.images, run.exceptions

Written against Streamlit 1.67's protocol (``streamlit.proto``); a protocol change shows up as a
clear failure in ``tests/test_load.py``, not as a silent pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import requests
import websocket
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import FileUploaderState, UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

XSRF_COOKIE = "_streamlit_xsrf"
EARLY_FOR_RERUN = ForwardMsg.ScriptFinishedStatus.Value("FINISHED_EARLY_FOR_RERUN")


class ProtocolError(AssertionError):
    """The server answered something this client (and the test) did not expect."""


@dataclass
class Widget:
    kind: str  # the Element field: "button", "file_uploader", ...
    label: str
    id: str
    disabled: bool


@dataclass
class Run:
    """Everything one completed script run sent: its elements, in the order they came."""

    elements: list[tuple[str, Any]] = field(default_factory=list)  # (Element field name, its proto)
    seconds: float = 0.0  # from the request to the end of the last run it caused

    def of(self, kind: str) -> list[Any]:
        return [e for k, e in self.elements if k == kind]

    @property
    def markdown(self) -> list[str]:
        return [e.body for e in self.of("markdown")]

    @property
    def texts(self) -> str:
        """All text the run shows: markdown, alerts, headings, captions, labels."""
        parts = [e.body for k, e in self.elements if k in ("markdown", "alert", "heading", "text")]
        parts += [w.label for w in self.widgets]
        return "\n".join(parts)

    @property
    def images(self) -> list[str]:
        return [img.url for e in self.of("imgs") for img in e.imgs]

    @property
    def exceptions(self) -> list[str]:
        return [f"{e.type}: {e.message}" for e in self.of("exception")]

    @property
    def widgets(self) -> list[Widget]:
        out = []
        for kind, e in self.elements:
            if isinstance(getattr(e, "id", None), str) and e.id and hasattr(e, "label"):
                out.append(Widget(kind, e.label, e.id, bool(getattr(e, "disabled", False))))
        return out

    def widget(self, kind: str, label: str) -> Widget:
        found = [w for w in self.widgets if w.kind == kind and w.label == label]
        if not found:
            shown = sorted({(w.kind, w.label) for w in self.widgets})
            raise ProtocolError(f"no {kind} labelled {label!r} in the run; widgets: {shown}")
        return found[0]


class StreamlitSession:
    """One user's session on a running Streamlit server (``base_url`` like ``http://127.0.0.1:8501``)."""

    def __init__(self, base_url: str, timeout: float = 300.0):
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.http = requests.Session()
        self.http.trust_env = False  # loopback: never through a proxy
        # A fresh connection per request: uvicorn closes idle keep-alive connections after 5 s, and
        # a request sent on one just as it closes fails with "connection reset" (seen under load).
        self.http.headers["Connection"] = "close"
        # The health check sets the XSRF cookie, as for the frontend; uploads must echo it in a header.
        self.http.get(self.base_url + "/_stcore/health", timeout=timeout).raise_for_status()
        xsrf = self.http.cookies.get(XSRF_COOKIE, "")
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        self.ws = websocket.create_connection(
            self.base_url.replace("http", "ws", 1) + "/_stcore/stream",
            subprotocol=["streamlit", xsrf] if xsrf else ["streamlit"],
            origin=self.base_url,
            cookie=cookie or None,
            timeout=timeout,
        )
        self.xsrf = xsrf
        self.session_id = ""
        self.pages: dict[str, str] = {}  # page title -> script hash
        self.page_hash = ""
        self.state: dict[str, WidgetState] = {}  # what the frontend would send back: kept widget values
        self._cache: dict[str, ForwardMsg] = {}  # message hash -> message, for ref_hash messages
        self._request = 0
        self.last: Run | None = None

    def __enter__(self) -> StreamlitSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.http.close()

    # --- messages -----------------------------------------------------------------------------
    def _send(self, msg: BackMsg) -> None:
        self.ws.send_binary(msg.SerializeToString())

    def _receive(self) -> ForwardMsg:
        data = self.ws.recv()
        msg = ForwardMsg()
        msg.ParseFromString(data if isinstance(data, bytes) else data.encode())
        if msg.WhichOneof("type") == "ref_hash":
            if msg.ref_hash not in self._cache:
                raise ProtocolError(f"the server referred to a message this session never got ({msg.ref_hash})")
            cached = ForwardMsg()
            cached.CopyFrom(self._cache[msg.ref_hash])
            cached.metadata.CopyFrom(msg.metadata)
            return cached
        if msg.hash and msg.metadata.cacheable:
            self._cache[msg.hash] = msg
        return msg

    def _run(self, triggers: list[WidgetState] = (), page: str | None = None) -> Run:
        """Ask for a run and read until the last run it causes (st.rerun chains) has finished."""
        if page is not None:
            if page not in self.pages:
                raise ProtocolError(f"no page {page!r}; pages: {sorted(self.pages)}")
            self.page_hash = self.pages[page]
        msg = BackMsg()
        client = msg.rerun_script
        client.page_script_hash = self.page_hash
        widgets = {**self.state, **{t.id: t for t in triggers}}
        client.widget_states.widgets.extend(widgets.values())
        client.cached_message_hashes.extend(self._cache)
        started = time.perf_counter()
        self._send(msg)
        run = Run()
        deadline = time.monotonic() + self.timeout
        while True:
            if time.monotonic() > deadline:
                raise ProtocolError(f"no end of the script run after {self.timeout:.0f} s")
            m = self._receive()
            kind = m.WhichOneof("type")
            if kind == "new_session":
                run = Run()  # a new run: what the previous one sent is replaced
                self.session_id = m.new_session.initialize.session_id or self.session_id
                self.page_hash = m.new_session.page_script_hash or self.page_hash
            elif kind == "navigation":
                self.pages = {p.page_name: p.page_script_hash for p in m.navigation.app_pages}
                self.page_hash = m.navigation.page_script_hash or self.page_hash
            elif kind == "delta" and m.delta.WhichOneof("type") == "new_element":
                element = m.delta.new_element
                field_name = element.WhichOneof("type")
                run.elements.append((field_name, getattr(element, field_name)))
            elif kind == "script_finished" and m.script_finished != EARLY_FOR_RERUN:
                run.seconds = time.perf_counter() - started
                self.last = run
                return run

    # --- what a person does ------------------------------------------------------------------
    def rerun(self, page: str | None = None) -> Run:
        """Load the app (first call) or a page of it, as following a sidebar link does."""
        return self._run(page=page)

    def click(self, label: str) -> Run:
        """Press the button labelled ``label`` in the last run."""
        button = self._last().widget("button", label)
        if button.disabled:
            raise ProtocolError(f"the button {label!r} is disabled")
        return self._run([WidgetState(id=button.id, trigger_value=True)])

    def upload(self, label: str, files: list[tuple[str, bytes]]) -> Run:
        """Give ``files`` (name, bytes) to the file uploader labelled ``label``, then rerun."""
        uploader = self._last().widget("file_uploader", label)
        self._request += 1
        request = BackMsg()
        request.file_urls_request.request_id = str(self._request)
        request.file_urls_request.session_id = self.session_id
        request.file_urls_request.file_names.extend(name for name, _ in files)
        self._send(request)
        while True:
            m = self._receive()
            if m.WhichOneof("type") == "file_urls_response" and m.file_urls_response.response_id == str(self._request):
                break
        response = m.file_urls_response
        if response.error_msg:
            raise ProtocolError(f"upload refused: {response.error_msg}")
        state = FileUploaderState()
        for (name, data), urls in zip(files, response.file_urls):
            url = urls.upload_url if urls.upload_url.startswith("http") else self.base_url + urls.upload_url
            r = self.http.put(
                url, files={"file": (name, data)}, headers={"X-Xsrftoken": self.xsrf}, timeout=self.timeout
            )
            if r.status_code >= 300:
                raise ProtocolError(f"uploading {name} failed: HTTP {r.status_code} {r.text[:200]}")
            state.uploaded_file_info.append(
                UploadedFileInfo(file_id=urls.file_id, name=name, size=len(data), file_urls=urls)
            )
        widget = WidgetState(id=uploader.id)
        widget.file_uploader_state_value.CopyFrom(state)
        self.state[uploader.id] = widget
        return self._run()

    def _last(self) -> Run:
        if self.last is None:
            raise ProtocolError("no run yet: call rerun() first")
        return self.last

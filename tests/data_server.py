"""A loopback HTTP server for the download tests: the real Omniglot zips, and broken variants of them.

A plain helper module, not a test file. The first part of a path picks how the server behaves, the
rest is the file's path under the official base URL::

    with data_server() as root:          # http://127.0.0.1:PORT
        base = f"{root}/good"            # serves the real zips from the shared data folder
        base = f"{root}/truncated"       # announces the full length, sends half, hangs up
        base = f"{root}/wrong"           # the right length, other bytes
        base = f"{root}/missing"         # 404 for everything
        base = f"{root}/drop"            # closes the connection without answering
        base = f"{root}/slow"            # the real zips, about 3 MB/s (a progress bar can be seen)
        base = f"{root}/wrong@all_runs.zip"  # only that file is broken, the others are good

The server binds 127.0.0.1 on a port the kernel picks; nothing here reaches the internet.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playground.data.download import FILES
from playground.data.omniglot import default_data_dir


def real_files(folder: Path | None = None) -> dict[str, bytes]:
    """The real zips of ``folder`` (default: the data folder) by their path under the base URL."""
    folder = folder or default_data_dir()
    return {f.path: (folder / f.name).read_bytes() for f in FILES if (folder / f.name).is_file()}


def _handler(files: dict[str, bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet: pytest shows failures, not every request
            pass

        def do_GET(self) -> None:
            variant, _, path = self.path.lstrip("/").partition("/")
            mode, _, only = variant.partition("@")
            if only and only != path.rsplit("/", 1)[-1]:
                mode = "good"
            body = files.get(path)
            if mode == "missing" or body is None:
                self.send_error(404, "Not Found")
                return
            if mode == "drop":
                self.close_connection = True
                return  # no status line at all: the client sees the connection closed
            if mode == "wrong":
                body = bytes(b ^ 0x5A for b in body)
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "truncated":
                self.wfile.write(body[: len(body) // 2])
                self.close_connection = True
                return
            step = 1 << 16
            for i in range(0, len(body), step):
                self.wfile.write(body[i : i + step])
                if mode == "slow":
                    time.sleep(0.02)

    return Handler


@contextlib.contextmanager
def data_server(files: dict[str, bytes] | None = None) -> Iterator[str]:
    """Serve ``files`` (default: the real ones) on 127.0.0.1; yield the root URL, stop on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(real_files() if files is None else files))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="data-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

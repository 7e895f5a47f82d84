"""`playground.data.download` and `python -m playground download` against a loopback HTTP server.

The server (tests/data_server.py) serves the real zips of the data folder, so the real checksums
verify, and broken variants of them. Every test points ``$PLAYGROUND_DATA_URL`` at 127.0.0.1 (the
autouse fixture checks): the official URLs are never fetched here.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from data_server import data_server, real_files

from playground.cli import main
from playground.data.download import (
    BASE_URL_ENV,
    FILES,
    LAKE_RUNS_FILE,
    DataFile,
    base_url,
    download_data,
    megabytes,
    missing_files,
)
from playground.data.omniglot import DataError, omniglot_available
from playground.lake.runs import load_lake_runs

pytestmark = pytest.mark.omniglot


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Nothing here may reach the official host: the base URL starts at a closed loopback port."""
    monkeypatch.setenv(BASE_URL_ENV, "http://127.0.0.1:9/nothing-set")
    yield
    assert urlsplit(base_url()).hostname == "127.0.0.1"


@pytest.fixture(scope="module")
def server():
    files = real_files()
    if len(files) != len(FILES):
        pytest.skip("the data folder lacks the zips the server would serve")
    with data_server(files) as root:
        yield root


@pytest.fixture
def serve(server, monkeypatch):
    """``serve(mode)`` points the download at the loopback server's ``mode`` (see data_server)."""

    def point(mode: str) -> str:
        monkeypatch.setenv(BASE_URL_ENV, f"{server}/{mode}")
        assert urlsplit(base_url()).hostname == "127.0.0.1"
        return base_url()

    return point


def leftovers(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden ``.part`` files included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_downloads_verifies_and_the_loaders_read_it(serve, tmp_path):
    serve("good")
    seen = []
    saved = download_data(tmp_path, progress=lambda done, total, name: seen.append((done, total, name)))
    assert leftovers(tmp_path) == sorted(f.name for f in FILES)
    assert [p.name for p in saved] == [f.name for f in FILES]
    for f in FILES:
        assert hashlib.sha256((tmp_path / f.name).read_bytes()).hexdigest() == f.sha256
    dones = [d for d, _, _ in seen]
    assert dones == sorted(dones) and seen[-1][0] == seen[-1][1] == sum(f.size for f in FILES)
    assert [n for _, _, n in seen[:1]] == ["images_background.zip"] and seen[-1][2] == "all_runs.zip"
    assert omniglot_available(tmp_path) and missing_files(tmp_path) == []
    assert len(load_lake_runs(tmp_path)) == 20


def test_only_the_missing_files_are_fetched(serve, tmp_path):
    serve("good")
    download_data(tmp_path, files=[LAKE_RUNS_FILE])
    assert missing_files(tmp_path) == [f for f in FILES if f is not LAKE_RUNS_FILE]
    assert megabytes(missing_files(tmp_path)) == 14
    (tmp_path / "all_runs.zip").unlink()
    (tmp_path / "run01").mkdir()  # extracted runs count as present
    assert LAKE_RUNS_FILE not in missing_files(tmp_path)


@pytest.mark.parametrize(
    ("mode", "said"),
    [
        ("truncated", "stopped after 4,111,436 of 8,222,872 bytes"),
        ("wrong", "is not a good copy"),
        ("missing", "answered 404 Not Found"),
        ("drop", "broke off"),
    ],
)
def test_a_broken_download_says_what_happened_and_leaves_nothing(serve, tmp_path, mode, said):
    serve(mode)
    with pytest.raises(DataError, match=said) as caught:
        download_data(tmp_path)
    assert "try again" in str(caught.value).lower()
    assert leftovers(tmp_path) == []


def test_a_bad_last_file_keeps_the_good_ones(serve, tmp_path):
    serve("wrong@all_runs.zip")
    with pytest.raises(DataError, match="all_runs.zip arrived but is not a good copy"):
        download_data(tmp_path)
    assert leftovers(tmp_path) == ["images_background.zip", "images_evaluation.zip"]
    serve("good")
    download_data(tmp_path)  # the retry fetches only what is still missing
    assert leftovers(tmp_path) == sorted(f.name for f in FILES)


def test_no_server_at_all(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(BASE_URL_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(DataError, match=r"Could not reach 127\.0\.0\.1.*Connection refused.*internet connection"):
        download_data(tmp_path)
    assert leftovers(tmp_path) == []


def test_a_folder_that_cannot_be_written(serve, tmp_path):
    """Root ignores permission bits, so as root the folder sits under a regular file (NotADirectoryError)."""
    serve("good")
    if os.geteuid() == 0:
        (tmp_path / "a-file").write_text("not a folder")
        target = tmp_path / "a-file" / "omniglot"
    else:
        target = tmp_path / "locked"
        target.mkdir()
        target.chmod(0o500)
    try:
        with pytest.raises(DataError, match=r"Cannot write to .*(Not a directory|Permission denied).*PLAYGROUND_DATA"):
            download_data(target)
    finally:
        if target.exists():
            target.chmod(0o700)
    assert leftovers(target) == []


def test_a_full_disk(serve, tmp_path):
    """No small real filesystem can be mounted here, so the disk fills up through an injected writer:
    it writes the first 100 kB to the real ``.part`` file, then raises ENOSPC as a full disk does."""
    serve("good")
    on_disk = []

    class FillsUp(io.RawIOBase):
        def __init__(self, raw):
            self.raw, self.written = raw, 0

        def write(self, data):
            if self.written >= 100_000:
                self.raw.flush()
                on_disk.extend((p.name, p.stat().st_size) for p in tmp_path.glob(".*.part"))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written += len(data)
            return self.raw.write(data)

    with pytest.raises(DataError, match=r"The disk holding .* is full \(images_background.zip needs about 8 MB\)"):
        download_data(tmp_path, writer=FillsUp)
    assert on_disk and on_disk[0][1] > 0  # there was a half-written file...
    assert leftovers(tmp_path) == []  # ...and it is gone


def test_stopping_midway_leaves_nothing(serve, tmp_path):
    """A page left mid-download stops its script with an exception that is no Exception: still no half file."""
    serve("good")

    def stop(done: int, total: int, name: str) -> None:
        if done > 200_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_data(tmp_path, progress=stop)
    assert leftovers(tmp_path) == []


def rezipped(data: bytes, drop_run: str | None = None) -> bytes:
    """The same members, compressed anew (so other bytes and another checksum), optionally one run fewer."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            if drop_run is None or not info.filename.startswith(drop_run):
                dst.writestr(info.filename, src.read(info))
    return out.getvalue()


def test_lake_runs_without_a_published_checksum_must_be_whole(tmp_path):
    runs = real_files()[LAKE_RUNS_FILE.path]
    files = {"a/" + LAKE_RUNS_FILE.path: rezipped(runs), "b/" + LAKE_RUNS_FILE.path: rezipped(runs, "run07")}
    with data_server(files) as root:
        download_data(tmp_path / "a", files=[LAKE_RUNS_FILE], base=f"{root}/good/a")
        assert len(load_lake_runs(tmp_path / "a")) == 20
        with pytest.raises(DataError, match="all_runs.zip arrived but is not a good copy"):
            download_data(tmp_path / "b", files=[LAKE_RUNS_FILE], base=f"{root}/good/b")
    assert leftovers(tmp_path / "b") == []


def test_the_official_md5_alone_is_enough(tmp_path):
    """A file the table knows only by its official md5 (as torchvision checks it) is accepted."""
    body = b"an official file"
    official = DataFile("x.zip", "x.zip", len(body), hashlib.md5(body).hexdigest(), "0" * 64, "x")
    with data_server({"x.zip": body}) as root:
        download_data(tmp_path, files=[official], base=f"{root}/good")
        assert (tmp_path / "x.zip").read_bytes() == body
        with pytest.raises(DataError, match="not a good copy"):
            download_data(tmp_path / "2", files=[official], base=f"{root}/wrong")


def test_the_cli_prints_progress_and_the_result(serve, tmp_path, capsys):
    serve("good")
    assert main(["download", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "about 14 MB" in out and "14.2 of 14.2 MB (all_runs.zip)" in out
    assert f"are in {tmp_path}" in out
    assert main(["download", "--data-dir", str(tmp_path)]) == 0
    assert "already in" in capsys.readouterr().out


def test_the_cli_fails_clearly(serve, tmp_path, capsys):
    serve("missing")
    assert main(["download", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: http://127.0.0.1:") and "404" in err and "Traceback" not in err
    assert leftovers(tmp_path) == []

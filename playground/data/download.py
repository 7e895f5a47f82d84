"""Fetch Omniglot's two zips and Lake's 20 runs into the data folder: checked, atomic, with progress.

Each file streams into a hidden ``.part`` file beside its final place, is checked against the table
below, and only then renamed into place (``os.replace``, atomic), so a reader never sees half a file
and a failure of any kind leaves nothing behind. ``$PLAYGROUND_DATA_URL`` replaces the official host
(a mirror, or the tests' loopback server). How the checksums were chosen: docs/data.md.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import socket
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

from playground.data.omniglot import SETS, DataError, default_data_dir

BASE_URL_ENV = "PLAYGROUND_DATA_URL"
OFFICIAL_BASE_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python"
TIMEOUT_S = 30.0  # a server silent this long has gone
CHUNK = 1 << 16

# (bytes done, bytes in all, the file being fetched); the total grows more exact as servers announce sizes.
Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class DataFile:
    """One file of the data folder, where it comes from and the digests a good copy has."""

    name: str  # in the data folder
    path: str  # under the base URL
    size: int  # bytes of the copy whose SHA-256 is listed: the size shown before a server announces one
    md5: str | None  # of the official file, as torchvision checks it; None where nobody publishes one
    sha256: str  # of the copy in the project's data folder (its SHA256SUMS)
    unpacked: str  # a folder that stands for the file once extracted


# One table, one source: the official md5s are torchvision's (datasets.Omniglot.zips_md5); the SHA-256s
# are /work/shared/data/omniglot/SHA256SUMS, the project's copies, rebuilt with the same tree (so not
# byte-identical to the official zips). A download matching either is good. Lake's repository publishes
# no checksum of all_runs.zip, so an all_runs.zip matching neither is kept only when it tests whole and
# holds the 20 complete runs (see `_runs_complete`).
FILES: tuple[DataFile, ...] = (
    DataFile(
        "images_background.zip",
        "images_background.zip",
        8_222_872,
        "68d2efa1b9178cc56df9314c21c6e718",
        "f78ff47ae7e67bdd8ba6a9f92376bac78e458250ad28dfea2bb257ae41fb2c82",
        "images_background",
    ),
    DataFile(
        "images_evaluation.zip",
        "images_evaluation.zip",
        5_617_248,
        "6b91aef0f799c5bb55b94e3f2daec811",
        "205437386d339c20ea84e6d3164fda4089b623ff76e0ff06f97f1494c46bd168",
        "images_evaluation",
    ),
    DataFile(
        "all_runs.zip",
        "one-shot-classification/all_runs.zip",
        352_787,
        None,
        "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325",
        "run01",
    ),
)
OMNIGLOT_FILES = tuple(f for f in FILES if f.unpacked in SETS)
LAKE_RUNS_FILE = next(f for f in FILES if f.name == "all_runs.zip")


def base_url() -> str:
    """Where the files are fetched from: ``$PLAYGROUND_DATA_URL``, else Lake's GitHub repository."""
    return (os.environ.get(BASE_URL_ENV) or OFFICIAL_BASE_URL).rstrip("/")


def file_url(f: DataFile, base: str | None = None) -> str:
    """The URL of one file under ``base`` (default `base_url`)."""
    return f"{(base or base_url()).rstrip('/')}/{f.path}"


def is_present(f: DataFile, data_dir: str | Path) -> bool:
    """True when the loaders would find ``f`` in ``data_dir``: the file, or its extracted folder."""
    data_dir = Path(data_dir)
    return any((d / f.name).is_file() or (d / f.unpacked).is_dir() for d in (data_dir, data_dir / "omniglot-py"))


def missing_files(data_dir: str | Path | None = None, files: tuple[DataFile, ...] = FILES) -> list[DataFile]:
    """The files of ``files`` that ``data_dir`` (default: the data folder) lacks."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    return [f for f in files if not is_present(f, data_dir)]


def megabytes(files: list[DataFile] | tuple[DataFile, ...]) -> int:
    """The files' size in whole megabytes, at least 1: what a button may promise."""
    return max(1, round(sum(f.size for f in files) / 1e6))


def download_data(
    data_dir: str | Path | None = None,
    files: list[DataFile] | tuple[DataFile, ...] | None = None,
    progress: Progress | None = None,
    base: str | None = None,
    writer: Callable[[BinaryIO], BinaryIO] | None = None,
) -> list[Path]:
    """Fetch ``files`` (default: those missing) into ``data_dir``; DataError saying what to do on any failure.

    ``writer`` wraps each open ``.part`` file (the tests give one whose disk fills up).
    """
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    files = list(missing_files(data_dir) if files is None else files)
    base = base or base_url()
    _make_folder(data_dir)
    sizes = {f.name: f.size for f in files}
    done_before, saved = 0, []
    for f in files:

        def step(done: int, total: int, f: DataFile = f, before: int = done_before) -> None:
            if total:
                sizes[f.name] = total
            if progress is not None:
                progress(before + done, sum(sizes.values()), f.name)

        saved.append(_fetch(f, file_url(f, base), data_dir, step, writer))
        done_before += sizes[f.name]
    return saved


def _make_folder(data_dir: Path) -> None:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(_write_failure(data_dir, exc)) from exc


def _write_failure(data_dir: Path, exc: OSError, f: DataFile | None = None) -> str:
    """What a failed write means to the person and what they can do about it."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        need = f" ({f.name} needs about {megabytes([f])} MB)" if f else ""
        return f"The disk holding {data_dir} is full{need}. Free some space there and try again."
    reason = exc.strerror or str(exc)
    return (
        f"Cannot write to {data_dir} ({reason}). Point $PLAYGROUND_DATA (or --data-dir) at a folder you can "
        "write to, or make this one writable, and try again."
    )


def _opener(url: str) -> urllib.request.OpenerDirector:
    """urllib's usual opener, without any proxy for a loopback host (a proxy cannot reach it)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return urllib.request.build_opener(urllib.request.ProxyHandler({})) if loopback else urllib.request.build_opener()


def _fetch(f: DataFile, url: str, data_dir: Path, step: Callable[[int, int], None], writer) -> Path:
    """One file: stream into a ``.part`` beside its place, check it, rename it into place."""
    target = data_dir / f.name
    try:
        fd, part_name = tempfile.mkstemp(prefix=f".{f.name}.", suffix=".part", dir=data_dir)
    except OSError as exc:
        raise DataError(_write_failure(data_dir, exc, f)) from exc
    part = Path(part_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            out = writer(raw) if writer is not None else raw
            md5, sha256 = _stream(f, url, out, data_dir, step)
            try:
                raw.flush()
                os.fsync(raw.fileno())
            except OSError as exc:
                raise DataError(_write_failure(data_dir, exc, f)) from exc
        _check(f, part, md5, sha256)
        try:
            os.replace(part, target)
        except OSError as exc:
            raise DataError(_write_failure(data_dir, exc, f)) from exc
    except BaseException:  # a stopped page or Ctrl-C too: never leave half a file
        part.unlink(missing_ok=True)
        raise
    return target


def _stream(f: DataFile, url: str, out: BinaryIO, data_dir: Path, step) -> tuple[str, str]:
    """Copy the response to ``out``, hashing as it goes; DataError for every way the network fails."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    done, total = 0, 0
    host = urllib.parse.urlsplit(url).netloc
    retry = f"Check the internet connection and try again (or set ${BASE_URL_ENV} to a mirror of the same files)."
    try:
        with _opener(url).open(url, timeout=TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0)
            step(0, total)
            while chunk := response.read(CHUNK):
                md5.update(chunk)
                sha256.update(chunk)
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise DataError(_write_failure(data_dir, exc, f)) from exc
                done += len(chunk)
                step(done, total)
    except urllib.error.HTTPError as exc:
        raise DataError(
            f"{url} answered {exc.code} {exc.reason}: the server does not have {f.name} there. "
            f"Try again later, or check ${BASE_URL_ENV} if you set it."
        ) from exc
    except urllib.error.URLError as exc:
        raise DataError(f"Could not reach {host} to download {f.name} ({exc.reason}). {retry}") from exc
    except (TimeoutError, socket.timeout) as exc:
        raise DataError(
            f"{host} stopped answering while sending {f.name} (nothing for {TIMEOUT_S:.0f} s). {retry}"
        ) from exc
    except (HTTPException, ConnectionError) as exc:
        raise DataError(
            f"The download of {f.name} broke off after {done:,} bytes ({type(exc).__name__}: {exc}). {retry}"
        ) from exc
    if total and done != total:
        raise DataError(f"The download of {f.name} stopped after {done:,} of {total:,} bytes. {retry}")
    return md5.hexdigest(), sha256.hexdigest()


def _check(f: DataFile, part: Path, md5: str, sha256: str) -> None:
    """Keep the file only when it is a known good copy (or, for Lake's runs, the 20 runs whole)."""
    if md5 == f.md5 or sha256 == f.sha256:
        return
    if f.md5 is None and _runs_complete(part):
        return
    raise DataError(
        f"{f.name} arrived but is not a good copy (its SHA-256 is {sha256[:16]}…, expected {f.sha256[:16]}…"
        f"{f' or md5 {f.md5}' if f.md5 else ''}): it was damaged on the way or is another file. "
        f"Nothing was kept; try again, or check ${BASE_URL_ENV} if you set it."
    )


def _runs_complete(path: Path) -> bool:
    """True when ``path`` is a zip whose members all pass their CRC and that holds Lake's 20 runs whole."""
    try:
        with zipfile.ZipFile(path) as zf:
            if zf.testzip() is not None:
                return False
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, EOFError):
        return False
    for r in range(1, 21):
        run = f"run{r:02d}"
        pngs = [n for n in names if n.startswith(f"{run}/") and n.endswith(".png")]
        if f"{run}/class_labels.txt" not in names or len(pngs) != 40:
            return False
    return True

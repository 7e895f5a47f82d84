"""Load test: many people using one real app server at once, each with their own task.

Starts `streamlit run app.py` on loopback and connects ``PLAYGROUND_LOAD_SESSIONS`` (default 20)
sessions through Streamlit's own websocket protocol (`streamlit_client.py`: the messages the
browser frontend sends, without a Chromium per user). Each session imports its own 5-way 1-shot
Omniglot task (characters no other session has, class names carrying the session's number),
opens "Adapt and predict", uploads its own five queries, and then, all sessions at once, clicks
"Adapt and predict" ``PLAYGROUND_LOAD_ROUNDS`` times (default 5) with the default models
(ProtoNet, MAML and pixel nearest neighbour).

Checked for every session and every run:
- the predictions shown are the ones the library computes for *that* session's task;
- no run ever shows another session's class names, and every image it shows is one of the
  session's own (fetched from the server and matched against every session's images);
- the shared models' weight fingerprints (sidebar, "Advanced") equal the shipped
  checkpoints' before the load and after it, bit for bit;
- no exception is shown and the server logs no traceback.
The server's resident memory is sampled throughout; its peak must stay under
``MAX_SERVER_MEMORY_GIB``. Latencies and memory go to ``test-artifacts/load.json`` and stdout.
"""

from __future__ import annotations

import io
import json
import os
import re
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from browser import ARTIFACTS_DIR, streamlit_server
from streamlit_client import StreamlitSession

pytestmark = [pytest.mark.omniglot, pytest.mark.slow]  # 20 sessions x 5 rounds on one server

SESSIONS = int(os.environ.get("PLAYGROUND_LOAD_SESSIONS", "20"))
ROUNDS = int(os.environ.get("PLAYGROUND_LOAD_ROUNDS", "5"))
MODELS = ("protonet_lake", "maml_lake", "pixel_nn")  # the app's default selection
N_WAY = 5
MAX_SERVER_MEMORY_GIB = 4.0
WAIT = 600.0  # one run may wait behind every other session's on 2 CPU cores
FINGERPRINT = re.compile(r"`(\w+)` weights `([0-9a-f]{16})`")


@dataclass
class SessionTask:
    """One simulated user's task: the zip to import, the queries to upload, and what to expect."""

    index: int
    zip_name: str
    zip_bytes: bytes
    queries: list[tuple[str, bytes]]  # PNG files, dark ink on white, as people upload them
    class_names: list[str]
    images: list[np.ndarray]  # every 28x28 image this session may be shown (support and queries)
    expected: dict[str, list[str]]  # model -> predicted class name per query, from the library


@dataclass
class SessionLog:
    latencies: list[float] = field(default_factory=list)  # click to the end of the run, seconds
    adapt_ms: dict[str, list[float]] = field(default_factory=dict)  # model -> server-measured adapt times
    images_checked: int = 0
    runs_checked: int = 0
    fingerprints_before: dict[str, str] = field(default_factory=dict)
    fingerprints_after: dict[str, str] = field(default_factory=dict)


def prefix(i: int) -> str:
    return f"user{i:02d}-"


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def make_tasks(data, models) -> list[SessionTask]:
    """Tasks on disjoint characters: no image of one session can appear in another's."""
    from playground.interactive.imaging import preprocess_image, to_tensor
    from playground.interactive.inference import adapt_and_predict, task_adapt_options
    from playground.interactive.task_io import UserTask, export_task_zip, import_task_zip
    from playground.zoo.shipped import shipped_models

    entries = {e.name: e for e in shipped_models()}

    rng = np.random.default_rng(0)
    characters = rng.permutation(data.indices("images_evaluation"))
    assert len(characters) >= SESSIONS * N_WAY, "not enough evaluation characters for disjoint tasks"
    tasks = []
    for i in range(SESSIONS):
        chosen = characters[i * N_WAY : (i + 1) * N_WAY]
        drawings = [rng.permutation(data.images.shape[1])[:2] for _ in chosen]
        names = [f"{prefix(i)}{chr(97 + c)}" for c in range(N_WAY)]
        zip_name = f"task{i:02d}.zip"
        zip_bytes = export_task_zip(UserTask(names, [[data.images[c, d[0]]] for c, d in zip(chosen, drawings)]))
        order = rng.permutation(N_WAY)  # queries uploaded in shuffled order
        queries = [
            (f"u{i:02d}-q{q}.png", png(255 - data.images[chosen[j], drawings[j][1]])) for q, j in enumerate(order)
        ]
        # What the app will hold after the import and the upload, through the same functions.
        task = import_task_zip(zip_bytes, zip_name)
        query_images = [preprocess_image(b, n) for n, b in queries]
        support_x, support_y, _ = task.support()
        expected = {}
        for name, learner in models.items():
            # the settings the Adapt page starts at: the card's for the nearest task size
            defaults = entries[name].adapt_defaults(N_WAY, 1)
            settings = {o.name: o.default for o in task_adapt_options(learner, defaults)}
            pred = adapt_and_predict(name, learner, support_x, support_y, to_tensor(query_images), settings=settings)
            top2 = np.sort(pred.proba, axis=1)[:, -2:]
            # A near tie could flip between two processes' float orders; none has been seen, but say so.
            assert (top2[:, 1] - top2[:, 0] > 1e-4).all(), f"{name} has a near tie on task {i}"
            expected[name] = [names[c] for c in pred.predicted]
        images = [img for cls in task.examples for img in cls] + query_images
        tasks.append(SessionTask(i, zip_name, zip_bytes, queries, names, images, expected))
    return tasks


class MemorySampler:
    """Samples a process's resident memory (VmRSS) every ``period`` seconds in a thread."""

    def __init__(self, pid: int, period: float = 0.2):
        self.pid, self.period, self.samples = pid, period, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def read(self, field_name: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field_name)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.read("VmRSS"))
            except (OSError, KeyError):
                return
            self._stop.wait(self.period)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.peak_bytes = self.read("VmHWM")  # the kernel's own high-water mark, between samples too
        self._stop.set()
        self._thread.join()


# --- one session ---------------------------------------------------------------------------------


class Isolation:
    """Checks that a run shows only its own session's classes and images."""

    def __init__(self, base_url: str, tasks: list[SessionTask]):
        self.base_url = base_url
        self.owners = np.array([t.index for t in tasks for _ in t.images])
        # Thumbnails are dark ink on white, and may be sent as JPEG: match by the nearest image.
        self.pool = np.stack([255 - img for t in tasks for img in t.images]).astype(np.float32)
        self.prefixes = [prefix(t.index) for t in tasks]

    def check(self, session: StreamlitSession, run, task: SessionTask, log: SessionLog) -> None:
        text = run.texts
        leaked = [p for p in self.prefixes if p in text and p != prefix(task.index)]
        assert not leaked, f"session {task.index} was shown other sessions' classes: {leaked}"
        assert not run.exceptions, f"session {task.index} was shown an exception: {run.exceptions}"
        for url in run.images:
            r = session.http.get(url if url.startswith("http") else self.base_url + url, timeout=WAIT)
            r.raise_for_status()
            img = np.asarray(Image.open(io.BytesIO(r.content)).convert("L"), dtype=np.float32)
            assert img.shape == (28, 28), f"session {task.index} was shown a {img.shape} image"
            dist = np.abs(self.pool - img).mean((1, 2))
            nearest = int(dist.argmin())
            assert self.owners[nearest] == task.index, (
                f"session {task.index} was shown an image of session {self.owners[nearest]}"
            )
            assert dist[nearest] < 4.0, f"session {task.index} was shown an image unlike any ({dist[nearest]:.1f})"
            log.images_checked += 1
        log.runs_checked += 1


def fingerprints(run) -> dict[str, str]:
    found = dict(FINGERPRINT.findall("\n".join(run.markdown)))
    return {m: found.get(m, "missing") for m in MODELS}


def shown_predictions(run) -> dict[str, list[str]]:
    """model -> the class name it predicts for each query, in query order (from the page's prediction grid)."""
    import pyarrow as pa

    tables = [pa.ipc.open_stream(e.arrow_data.data).read_all().to_pandas() for e in run.of("dataframe")]
    grid = next(t for t in tables if "true class" in t.columns)
    # a cell reads "✓ name · 98%" (or "✗ ...", or no mark for an unlabelled query)
    return {m: [re.sub(r"^[✓✗] ", "", cell).rsplit(" · ", 1)[0] for cell in grid[m]] for m in MODELS}


def server_adapt_ms(run) -> dict[str, float]:
    """The adapt times the page's summary table shows (measured by the server, under the load)."""
    import pyarrow as pa

    tables = [pa.ipc.open_stream(e.arrow_data.data).read_all().to_pandas() for e in run.of("dataframe")]
    table = next(t for t in tables if "adapt (ms)" in t.columns)
    return dict(zip(table["model"], table["adapt (ms)"]))


def drive_session(base_url: str, task: SessionTask, isolation: Isolation, together: threading.Barrier) -> SessionLog:
    log = SessionLog()
    try:
        with StreamlitSession(base_url, timeout=WAIT) as s:
            run = s.rerun()
            log.fingerprints_before = fingerprints(run)
            s.upload("Import a task (.zip)", [(task.zip_name, task.zip_bytes)])
            run = s.click("Import")
            shown = run.texts.replace("\\", "")  # names arrive escaped for markdown (playground.ui.display.plain)
            assert f"Imported '{task.zip_name}': {N_WAY} classes" in shown, run.texts[-2000:]
            isolation.check(s, run, task, log)

            run = s.rerun(page="Adapt and predict")
            s.upload("Query images", task.queries)
            run = s.click("Add uploaded queries")
            assert f"Q{len(task.queries)}" in {img.caption for e in run.of("imgs") for img in e.imgs}
            isolation.check(s, run, task, log)

            together.wait()  # every session is connected and has its task: now all adapt at once
            for _ in range(ROUNDS):
                run = s.click("Adapt and predict")
                log.latencies.append(run.seconds)
                shown = shown_predictions(run)
                assert shown == task.expected, f"session {task.index}: shown {shown}, expected {task.expected}"
                for model, ms in server_adapt_ms(run).items():
                    log.adapt_ms.setdefault(model, []).append(float(ms))
                isolation.check(s, run, task, log)
            together.wait()  # everyone has finished adapting: the shared weights are final
            log.fingerprints_after = fingerprints(s.rerun())
    except BaseException:
        together.abort()  # the others stop waiting for this session
        raise
    return log


def test_many_concurrent_sessions_stay_isolated_and_correct(omniglot):
    from playground.zoo.checkpoints import load_learner, weights_fingerprint

    models = {m: load_learner(Path("assets/checkpoints") / f"{m}.pt").eval() for m in MODELS}
    shipped = {m: weights_fingerprint(learner) for m, learner in models.items()}
    with torch.no_grad():
        tasks = make_tasks(omniglot, models)

    with streamlit_server("app.py", timeout=120) as url, MemorySampler(url.process.pid) as memory:
        idle_rss = memory.read("VmRSS")
        isolation = Isolation(url, tasks)
        together = threading.Barrier(SESSIONS, timeout=2 * WAIT)
        started = time.perf_counter()
        errors, logs, stopped = [], [], []
        with ThreadPoolExecutor(SESSIONS) as pool:
            futures = [pool.submit(drive_session, url, t, isolation, together) for t in tasks]
            for t, f in zip(tasks, futures):
                try:
                    logs.append(f.result())
                except threading.BrokenBarrierError:
                    stopped.append(t.index)  # stopped because another session failed (reported there)
                except Exception as e:  # noqa: BLE001 - report every failing session, not only the first
                    errors.append(f"session {t.index}: {type(e).__name__}: {str(e)[:1500]}")
        elapsed = time.perf_counter() - started
        server_log = url.logs(6000)
    assert not errors, "\n\n".join(errors) + f"\n\n(stopped with them: {stopped})\nserver log:\n{server_log}"
    assert not stopped
    assert "Traceback" not in server_log, server_log

    for log in logs:
        assert log.fingerprints_before == shipped
        assert log.fingerprints_after == shipped  # bit-identical after every session's adapting
    latencies = [x for log in logs for x in log.latencies]
    assert len(latencies) == SESSIONS * ROUNDS
    adapt = {m: [x for log in logs for x in log.adapt_ms.get(m, [])] for m in MODELS}
    report = {
        "sessions": SESSIONS,
        "rounds_per_session": ROUNDS,
        "models": list(MODELS),
        "wall_s": round(elapsed, 1),
        "click_to_predictions_s": {
            "p50": round(statistics.median(latencies), 2),
            "p95": round(float(np.percentile(latencies, 95)), 2),
            "max": round(max(latencies), 2),
        },
        "server_adapt_ms": {
            m: {"p50": round(statistics.median(v), 1), "p95": round(float(np.percentile(v, 95)), 1)}
            for m, v in adapt.items()
        },
        "server_rss_idle_mib": round(idle_rss / 2**20),
        "server_peak_rss_mib": round(memory.peak_bytes / 2**20),
        "runs_checked": sum(log.runs_checked for log in logs),
        "images_checked": sum(log.images_checked for log in logs),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    (ARTIFACTS_DIR / "load.json").write_text(json.dumps(report, indent=2))
    print("load test:", json.dumps(report))
    assert memory.peak_bytes < MAX_SERVER_MEMORY_GIB * 2**30, f"server peak memory {memory.peak_bytes / 2**30:.2f} GiB"

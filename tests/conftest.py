from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

# The tests compute with one torch thread, and the processes they start inherit it: their tensors are small,
# and a second thread on a 2-core machine mostly spins waiting for the first (the learning tests took about
# six times the CPU on two threads as on one). Tests about threads set their own count; an OMP_NUM_THREADS
# given by the person running the tests stands.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))

from playground.data.omniglot import default_data_dir, omniglot_available  # noqa: E402

from synthetic import synthetic_glyphs  # noqa: E402

OMNIGLOT_SKIP = (
    f"Omniglot not found at {default_data_dir()}: set PLAYGROUND_DATA to a folder with "
    "images_background(.zip) and images_evaluation(.zip), or run `python -m playground download`"
)

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_configure(config):
    # Under pytest-xdist (-n), decode Omniglot here, in the process that starts the workers, so that on a cold
    # cache they read one cached copy instead of each decoding it and writing the same cache file at once.
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput") and omniglot_available():
        from playground.data.omniglot import load_omniglot

        load_omniglot()


def pytest_collection_modifyitems(config, items):
    # The `alone` tests first: each then waits only for the test its neighbour has just begun, not for a
    # minute-long compile picked up in the middle of the run.
    items.sort(key=lambda item: item.get_closest_marker("alone") is None)


@pytest.fixture(autouse=True)
def _alone_when_it_runs_against_a_clock(request, tmp_path_factory):
    """Under pytest-xdist, a test marked `alone` runs while no other test does.

    It measures against a clock (a 20-second training budget, a load test), so it must have the cores the
    machine has. A writer-preferring lock across the workers: every test holds `room` shared; an `alone` test
    holds the `door` while it waits for `room` alone, so no new test starts in the meantime."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    locks = tmp_path_factory.getbasetemp().parent  # shared by the workers of one run
    alone = request.node.get_closest_marker("alone") is not None
    with open(locks / "door.lock", "a") as door, open(locks / "room.lock", "a") as room:
        fcntl.flock(door, fcntl.LOCK_EX)
        if not alone:
            fcntl.flock(door, fcntl.LOCK_UN)
        fcntl.flock(room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)
            fcntl.flock(door, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def glyphs_train():
    return synthetic_glyphs(n_classes=48, seed=0)


@pytest.fixture(scope="session")
def glyphs_test():
    return synthetic_glyphs(n_classes=24, seed=1)


@pytest.fixture(scope="session")
def omniglot():
    if not omniglot_available():
        pytest.skip(OMNIGLOT_SKIP)
    from playground.data.omniglot import load_omniglot

    return load_omniglot()


@pytest.fixture(scope="session")
def lake_splits(omniglot):
    from playground.data.protocols import load_splits

    return load_splits("lake", data=omniglot, rotations=False)


@pytest.fixture(scope="session")
def app_server():
    """One `streamlit run app.py` for the browser tests that use the app as it ships, started when the first asks.

    Each test opens its own browser, so its own Streamlit session: they share what every visitor of one server
    shares (the cached, read-only models), and the server's start-up is paid once instead of once a test."""
    from browser import require_chromium, streamlit_server

    require_chromium()
    with streamlit_server("app.py") as url:
        yield url


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    """The app sets one torch thread for its visitors (`serve_threads`); an AppTest runs it in this process."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)

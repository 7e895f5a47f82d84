from __future__ import annotations

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

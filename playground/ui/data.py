"""The data's one-click download: where a page needs Omniglot or Lake's runs and they are missing."""

from __future__ import annotations

import threading

import streamlit as st

from playground.data.download import download_data, megabytes, missing_files
from playground.data.omniglot import DataError, default_data_dir
from playground.ui.display import plain
from playground.ui.resources import forget_data
from playground.ui.session import flash

# One download at a time in this server: a second visitor who clicks waits, then finds the files there.
_ONE_AT_A_TIME = threading.Lock()


def offer_download(why: str, key: str) -> bool:
    """Say ``why`` the page needs the data and offer the button that fetches it; True when nothing is missing.

    The click downloads what is missing with a progress bar, forgets what was loaded before and reruns
    the page, which then finds the data. A failure shows its message here; the visitor's task is untouched.
    """
    data_dir = default_data_dir()
    todo = missing_files(data_dir)
    if not todo:
        return True
    st.info(f"{why} It can be downloaded now into `{data_dir}`, checked against its published checksums.")
    label = f"Download Omniglot (about {megabytes(todo)} MB)"
    if not st.button(label, icon=":material/download:", type="primary", key=key):
        return False
    bar = st.progress(0.0, text="Connecting…")

    def show(done: int, total: int, name: str) -> None:
        fraction = min(done / total, 1.0) if total else 0.0
        bar.progress(fraction, text=f"Downloading {name}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")

    try:
        with _ONE_AT_A_TIME:
            download_data(data_dir, missing_files(data_dir), show)
    except DataError as exc:
        bar.empty()
        st.error(plain(exc), icon=":material/cloud_off:")
        return False
    forget_data()
    flash("success", f"Omniglot and Lake's runs are in `{data_dir}`. Everything that needs them works now.")
    st.rerun()
    return True  # not reached: the rerun takes over

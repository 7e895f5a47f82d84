"""What every visitor shares, loaded once per process: the shipped models, Omniglot, the first screen's task.

Each is an ``st.cache_resource``, keyed by this module's name: the app and its pages import it as
``playground.ui.resources`` and nothing else, so there is one cache, not one per name it was imported under.
Also here: which models this visitor compares, their own trained models, and the device they run on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st
import torch

from playground.data.omniglot import omniglot_available
from playground.zoo.shipped import ModelEntry, SessionModel, default_selection, shipped_models

if TYPE_CHECKING:
    from playground.algorithms import MetaLearner
    from playground.data.omniglot import Omniglot
    from playground.interactive.sample_tasks import SampledTask
    from playground.lake.runs import LakeRun


@st.cache_resource(show_spinner="Loading a pretrained model…")
def load_model(name: str, device: str) -> MetaLearner:
    """One shipped model, loaded once per process and device and shared by all sessions (read-only)."""
    return catalogue()[name].load(device)


@st.cache_resource
def catalogue() -> dict[str, ModelEntry]:
    """The shipped models by name, with their cards (read once per process)."""
    return {m.name: m for m in shipped_models()}


def own_models() -> dict[str, SessionModel]:
    """The models this visitor trained on Meta-train live: in their session only, never another's."""
    return st.session_state.setdefault("own_models", {})


def add_own_model(entry: SessionModel) -> None:
    """List a model this visitor trained beside the shipped ones, and choose it."""
    own_models()[entry.name] = entry
    choice = st.session_state.setdefault("model_choice", default_selection(list(catalogue())))
    if entry.name not in choice:
        choice.append(entry.name)  # the sidebar's picker shows the choice on the next run


def model_catalogue() -> dict[str, ModelEntry]:
    """Every model this visitor may pick: the shipped ones (shared), then their own (`own_models`)."""
    return {**catalogue(), **own_models()}


def get_model(name: str, device: str) -> MetaLearner:
    """A model by name: the visitor's own, or a shipped one loaded once per process."""
    own = own_models().get(name)
    return own.load(device) if own is not None else load_model(name, device)


def chosen_models() -> list[str]:
    """The models this session compares (the sidebar's choice; the default set until changed)."""
    names = model_catalogue()
    if "model_choice" not in st.session_state:
        st.session_state.model_choice = default_selection(list(names))
    return [n for n in st.session_state.model_choice if n in names]


def load_models(device: str, names: list[str] | None = None) -> dict[str, tuple[ModelEntry, MetaLearner]]:
    """The chosen models (or ``names``), each loaded on first use; cold start loads only the default set."""
    entries = model_catalogue()
    return {n: (entries[n], get_model(n, device)) for n in (chosen_models() if names is None else names)}


@st.cache_resource(show_spinner="Loading Omniglot…")
def load_omniglot_cached() -> Omniglot:
    """Both Omniglot sets, read (and preprocessed, on the first run) once per process."""
    from playground.data.omniglot import load_omniglot

    return load_omniglot()


@st.cache_resource
def demo_task() -> SampledTask:
    """The glyphs the first screen shows: one fixed sample, the same for everyone."""
    from playground.interactive.sample_tasks import sample_user_task

    return sample_user_task(load_omniglot_cached(), 5, 1, 1, seed=4)


@st.cache_resource(show_spinner="Loading Lake's 20 runs…")
def load_lake_runs_cached() -> list[LakeRun]:
    """Lake's 20 runs, read once per process and shared by all sessions (read-only)."""
    from playground.lake.runs import load_lake_runs

    return load_lake_runs()


def forget_data() -> None:
    """Drop what was loaded from the data folder, so that the next run reads what is there now."""
    for loader in (load_omniglot_cached, demo_task, load_lake_runs_cached):
        loader.clear()


def omniglot_present() -> bool:
    """Whether Omniglot is where the library looks for it (the pages that sample from it say so when not)."""
    return omniglot_available()


def device_choices() -> list[str]:
    """The devices the sidebar offers: CUDA only where there is one."""
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def current_device() -> str:
    """The device this session's models run on: the sidebar's choice, CUDA when "auto" and present."""
    choice = st.session_state.get("device_choice", "auto")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice

"""Shared UI glue for the pages: session state, cached models, guarded actions, thumbnails."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from playground.data.omniglot import omniglot_available
from playground.imaging import InputError
from playground.task_io import MAX_CLASSES, UserTask
from playground.zoo import ModelEntry, shipped_models

MAX_SHOTS = 5  # the app's limit: 1 to 5 examples per class


@dataclass
class Query:
    image: np.ndarray  # 28x28 uint8, ink = 255
    label: int | None  # true class, when known
    source: str


def state() -> st.session_state.__class__:
    """Initialise this session's state once; every user has their own."""
    ss = st.session_state
    if "task" not in ss:
        ss.task = UserTask(["A", "B", "C"], [[], [], []])
        ss.queries = []
        ss.nonce = 0  # bumped to give fresh (empty) canvases and uploaders
        ss.flash = []
        ss.results = None
    return ss


def fresh_key(name: str) -> str:
    return f"{name}-{st.session_state.nonce}"


def class_key(name: str) -> str:
    """A widget key that stays while the task's classes stay the same (so a chosen class is kept
    after adding an example) and changes when they change (so stale options never linger)."""
    import hashlib

    names = "\x1f".join(st.session_state.task.class_names)
    return f"{name}-{hashlib.sha1(names.encode()).hexdigest()[:10]}"


def reset_inputs() -> None:
    st.session_state.nonce += 1


def flash(kind: str, text: str) -> None:
    """A message shown at the top of the page on the next run."""
    st.session_state.flash.append((kind, text))


def show_flash() -> None:
    for kind, text in st.session_state.flash:
        {"error": st.error, "warning": st.warning, "success": st.success}.get(kind, st.info)(text)
    st.session_state.flash = []


def guarded(action: Callable[[], None], what: str) -> None:
    """Run a user action; bad input becomes a message, never a traceback, and state stays intact."""
    try:
        action()
    except ValueError as exc:  # InputError included: our own clear messages
        flash("error", f"{what}: {exc}")
    except Exception as exc:  # a bug must not lose the user's task either
        traceback.print_exc()
        flash("error", f"{what} failed unexpectedly ({type(exc).__name__}: {exc}). Your task is unchanged.")


def thumbnail(arr: np.ndarray) -> np.ndarray:
    """Dark ink on white, the way people draw; the model sees ink = 1."""
    return 255 - arr


def add_example(task: UserTask, cls: int, image: np.ndarray) -> None:
    if len(task.examples[cls]) >= MAX_SHOTS:
        raise InputError(f"'{task.class_names[cls]}' already has {MAX_SHOTS} examples, the most a class can have")
    task.examples[cls].append(image)


def add_class(task: UserTask) -> None:
    if task.n_way >= MAX_CLASSES:
        raise InputError(f"a task can have at most {MAX_CLASSES} classes")
    used = {n.strip().casefold() for n in task.class_names}
    name = next(
        c for c in (chr(65 + i) if i < 26 else f"class {i + 1}" for i in range(100)) if c.casefold() not in used
    )
    task.class_names.append(name)
    task.examples.append([])


@st.cache_resource(show_spinner="Loading the pretrained models…")
def load_models(device: str) -> dict[str, tuple[ModelEntry, object]]:
    """Every shipped model, loaded once per process and device, shared by all sessions (read-only)."""
    return {m.name: (m, m.load(device)) for m in shipped_models()}


@st.cache_resource(show_spinner="Loading Omniglot…")
def load_omniglot_cached():
    from playground.data.omniglot import load_omniglot

    return load_omniglot()


def omniglot_present() -> bool:
    return omniglot_available()


def device_choices() -> list[str]:
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def current_device() -> str:
    choice = st.session_state.get("device_choice", "auto")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice

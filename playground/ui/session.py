"""This visitor's session: the task being built, its edits, messages for the next run, guarded actions,
results remembered across reruns."""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import streamlit as st
import torch
from streamlit.runtime.state import SessionStateProxy

from playground.interactive.task_io import UserTask
from playground.ui.display import plain
from playground.ui.widgets import reset_inputs

T = TypeVar("T")


@dataclass
class Query:
    image: np.ndarray  # 28x28 uint8, ink = 255
    label: int | None  # true class, when known
    source: str


def state() -> SessionStateProxy:
    """Initialise this session's state once; every user has their own."""
    ss = st.session_state
    if "task" not in ss:
        ss.task = UserTask(["A", "B", "C"], [[], [], []])
        ss.queries = []
        ss.nonce = 0  # bumped to give fresh (empty) canvases and uploaders
        ss.flash = []
        ss.results = None
    return ss


def rename_class(i: int, key: str) -> None:
    """on_change of a class-name box: renamed before the page runs, so every widget shows the new name."""
    st.session_state.task.class_names[i] = st.session_state[key]


def forget_class(i: int) -> None:
    """Remove class ``i`` and keep the queries' labels and the picked targets pointing where they did."""
    ss = st.session_state
    del ss.task.class_names[i], ss.task.examples[i]
    ss.queries = [q for q in ss.queries if q.label != i]
    for q in ss.queries:
        if q.label is not None and q.label > i:
            q.label -= 1
    ss.targets = {w: t - 1 if t > i else t for w, t in ss.get("targets", {}).items()}
    ss.results = None


def replace_task(task: UserTask, queries: list[Query]) -> None:
    """Make ``task`` the current one; a task with examples that it replaces can be brought back."""
    ss = st.session_state
    if sum(ss.task.shots):
        ss.undo = (ss.task, ss.queries)
    ss.task, ss.queries, ss.results = task, queries, None
    ss.targets = {}


def undo_replace() -> None:
    """Bring back the task replace_task() last replaced, with empty inputs (theirs held the newer task)."""
    ss = st.session_state
    if ss.get("undo"):
        ss.task, ss.queries = ss.undo
        ss.undo, ss.results, ss.targets = None, None, {}
        reset_inputs()


def flash(kind: str, text: str) -> None:
    """A message shown at the top of the page on the next run: markdown, so pass names through plain()."""
    st.session_state.flash.append((kind, text))


def show_flash() -> None:
    """Show the messages flash() left for this run, once."""
    for kind, text in st.session_state.flash:
        {"error": st.error, "warning": st.warning, "success": st.success}.get(kind, st.info)(text)
    st.session_state.flash = []


def guarded(action: Callable[[], None], what: str) -> None:
    """Run a user action; bad input becomes a message, never a traceback, and state stays intact."""
    try:
        action()
    except ValueError as exc:  # InputError included: our own clear messages
        flash("error", f"{plain(what)}: {plain(exc)}")
    except Exception as exc:  # a bug must not lose the user's task either
        traceback.print_exc()
        flash(
            "error", f"{plain(what)} failed unexpectedly ({type(exc).__name__}: {plain(exc)}). Your task is unchanged."
        )


def attempt(compute: Callable[[], T], what: str) -> T | None:
    """``compute()``, or None with a clear message in the page (never a traceback)."""
    try:
        return compute()
    except ValueError as exc:
        st.error(f"{plain(what)}: {plain(exc)}")
    except Exception as exc:  # a bug must not take the page down
        traceback.print_exc()
        st.error(f"{plain(what)} failed unexpectedly ({type(exc).__name__}: {plain(exc)}).")
    return None


def require_task() -> tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor, list[int | None]]:
    """The current task as tensors (support x, y, class names, query x, query labels), or stop the
    page with a pointer to the build page when the task is not ready."""
    from playground.interactive.imaging import to_tensor

    ss = state()
    problems = ss.task.problems()
    if problems:
        st.warning("Finish the task first:\n" + "\n".join(f"- {plain(p)}" for p in problems))
        st.page_link("pages/build_task.py", label="Go to Build a task", icon="✏️")
        st.stop()
    support_x, support_y, names = ss.task.support()
    query_x = to_tensor([q.image for q in ss.queries]) if ss.queries else torch.zeros(0, 1, 28, 28)
    return support_x, support_y, names, query_x, [q.label for q in ss.queries]


def digest(*parts: object) -> str:
    """A short fingerprint of tensors, arrays and plain values (for caching what a page computed)."""
    h = hashlib.sha1()
    for p in parts:
        if isinstance(p, torch.Tensor):
            p = p.detach().cpu().numpy()
        h.update(np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray) else repr(p).encode())
    return h.hexdigest()[:16]


def remembered(key: str, compute: Callable[[], T], keep: int = 8) -> T:
    """``compute()`` once per key in this session (a rerun that changes nothing recomputes nothing)."""
    memo = st.session_state.setdefault("memo", {})
    if key not in memo:
        memo[key] = compute()
        while len(memo) > keep:
            memo.pop(next(iter(memo)))
    return memo[key]


def try_sample_task() -> None:
    """The one-click path: a small sampled task with queries, adapted at once on Adapt and predict."""
    from playground.interactive.sample_tasks import sample_user_task
    from playground.ui.resources import load_omniglot_cached

    s = sample_user_task(load_omniglot_cached(), 5, 1, 2)
    replace_task(s.task, [Query(img, lab, "Omniglot") for img, lab in zip(s.queries, s.query_labels)])
    reset_inputs()
    state().autorun = True


def client_gone() -> Callable[[], bool]:
    """A check for long work: true once this session's browser has gone (tab closed, connection lost), so
    the work it started can stop instead of computing for nobody."""
    from streamlit import runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not runtime.exists():
        return lambda: False
    instance, session_id = runtime.get_instance(), ctx.session_id
    # `is False`: under AppTest the runtime is a mock whose answer is neither True nor False.
    return lambda: instance.is_active_session(session_id) is False

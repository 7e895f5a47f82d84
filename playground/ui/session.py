"""The pages' shared glue: session state, cached models, guarded actions, thumbnails."""

from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from playground.algorithms import AdaptOption
from playground.data.omniglot import omniglot_available
from playground.task_io import UserTask
from playground.zoo import ModelEntry, default_selection, shipped_models


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


_MARKDOWN_SPECIAL = {c: "\\" + c for c in r"""!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"""}
_MARKDOWN_SPECIAL.update({"\n": " ", "\r": " "})
WORD_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(?:https?:|www\.|@)")


def plain(text: object) -> str:
    """``text`` as literal text inside Streamlit markdown (alerts, captions, st.markdown).

    Class and file names come from visitors and from shared task files: rendered as markdown, a name
    like ``![t](http://host/x.png)`` would make the browser fetch from that host, and ``:red[..]`` or
    ``$x$`` would restyle the page. A backslash before every ASCII punctuation mark is CommonMark's
    own way to say "this character, literally"; newlines become spaces so a name stays one line.
    GitHub-flavoured markdown also links bare addresses (``http://``, ``www.``, ``a@b.c``) after the
    escapes are read, so an invisible word joiner breaks those patterns without changing what is seen.
    """
    text = _AUTOLINK.sub(lambda m: m.group(0)[:-1] + WORD_JOINER + m.group(0)[-1], str(text))
    return text.translate(str.maketrans(_MARKDOWN_SPECIAL))


def fresh_key(name: str) -> str:
    return f"{name}-{st.session_state.nonce}"


def class_key(name: str) -> str:
    """A widget key that stays while the task's classes stay the same (so a chosen class is kept
    after adding an example) and changes when they change (so stale options never linger)."""
    import hashlib

    names = "\x1f".join(st.session_state.task.class_names)
    return f"{name}-{hashlib.sha1(names.encode()).hexdigest()[:10]}"


def class_picker(label: str, which: str) -> int:
    """An "Add to class" box that keeps the class a person picked, by position, through renames.

    Its key changes with the class names so the options are never stale, and each new box starts
    from the class remembered here rather than from the first one: an example must never land in
    a class the person did not pick.
    """
    ss = st.session_state
    targets = ss.setdefault("targets", {})
    names = ss.task.class_names
    current = min(targets.get(which, 0), len(names) - 1)
    choice = st.selectbox(label, range(len(names)), index=current, format_func=lambda i: names[i], key=class_key(which))
    targets[which] = choice
    return choice


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
    ss = st.session_state
    if ss.get("undo"):
        ss.task, ss.queries = ss.undo
        ss.undo, ss.results, ss.targets = None, None, {}
        reset_inputs()


def reset_inputs() -> None:
    st.session_state.nonce += 1


def flash(kind: str, text: str) -> None:
    """A message shown at the top of the page on the next run: markdown, so pass names through plain()."""
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
        flash("error", f"{plain(what)}: {plain(exc)}")
    except Exception as exc:  # a bug must not lose the user's task either
        traceback.print_exc()
        flash(
            "error", f"{plain(what)} failed unexpectedly ({type(exc).__name__}: {plain(exc)}). Your task is unchanged."
        )


def thumbnail(arr: np.ndarray) -> np.ndarray:
    """Dark ink on white, the way people draw; the model sees ink = 1."""
    return 255 - arr


@st.cache_resource(show_spinner="Loading a pretrained model…")
def load_model(name: str, device: str):
    """One shipped model, loaded once per process and device and shared by all sessions (read-only)."""
    return catalogue()[name].load(device)


@st.cache_resource
def catalogue() -> dict[str, ModelEntry]:
    """The shipped models by name, with their cards (read once per process)."""
    return {m.name: m for m in shipped_models()}


def chosen_models() -> list[str]:
    """The models this session compares (the sidebar's choice; the default set until changed)."""
    names = catalogue()
    if "model_choice" not in st.session_state:
        st.session_state.model_choice = default_selection(list(names))
    return [n for n in st.session_state.model_choice if n in names]


def load_models(device: str, names: list[str] | None = None) -> dict[str, tuple[ModelEntry, object]]:
    """The chosen models (or ``names``), each loaded on first use; cold start loads only the default set."""
    entries = catalogue()
    return {n: (entries[n], load_model(n, device)) for n in (chosen_models() if names is None else names)}


@st.cache_resource(show_spinner="Loading Omniglot…")
def load_omniglot_cached():
    from playground.data.omniglot import load_omniglot

    return load_omniglot()


@st.cache_resource
def demo_task():
    """The glyphs the first screen shows: one fixed sample, the same for everyone."""
    from playground.sample_tasks import sample_user_task

    return sample_user_task(load_omniglot_cached(), 5, 1, 1, seed=4)


def omniglot_present() -> bool:
    return omniglot_available()


def option_widget(container, option: AdaptOption, key: str) -> float:
    """A slider for an integer option, a number box for a real one; always within its allowed range."""
    if option.integer:
        return container.slider(
            option.label,
            int(option.low),
            int(option.high),
            int(option.default),
            key=key,
            help=option.help,
            persist_state="session",
        )
    return container.number_input(
        option.label,
        min_value=float(option.low),
        max_value=float(option.high),
        value=float(option.default),
        format="%.4g",
        key=key,
        help=option.help,
        persist_state="session",
    )


def device_choices() -> list[str]:
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def current_device() -> str:
    choice = st.session_state.get("device_choice", "auto")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def require_task() -> tuple[torch.Tensor, torch.Tensor, list[str], torch.Tensor, list[int | None]]:
    """The current task as tensors (support x, y, class names, query x, query labels), or stop the
    page with a pointer to the build page when the task is not ready."""
    from playground.imaging import to_tensor

    ss = state()
    problems = ss.task.problems()
    if problems:
        st.warning("Finish the task first:\n" + "\n".join(f"- {plain(p)}" for p in problems))
        st.page_link("pages/build_task.py", label="Go to Build a task", icon="✏️")
        st.stop()
    support_x, support_y, names = ss.task.support()
    query_x = to_tensor([q.image for q in ss.queries]) if ss.queries else torch.zeros(0, 1, 28, 28)
    return support_x, support_y, names, query_x, [q.label for q in ss.queries]


def short_names(names: list[str], width: int = 18) -> list[str]:
    """Class names cut to fit a chart's axis, kept distinct.

    A long name keeps its start, "…" and its last words: the end is what tells similar names apart
    ("Old Church Slavonic (Cyrillic) 37" and "... 5"), so it is not the part cut off.
    """
    out = []
    for i, n in enumerate(names):
        s = n
        if len(n) > width:
            # The longest tail that starts at a word break and fits half the width; else the last characters.
            breaks = (n[m.start() :] for m in re.finditer(r"[\s_]", n) if len(n) - m.start() <= width // 2)
            tail = next(breaks, "") or n[-(width // 3) :]
            s = n[: width - 1 - len(tail)].rstrip() + "…" + tail
        out.append(s if s not in out else f"{s} ({i + 1})")
    return out


def digest(*parts) -> str:
    """A short fingerprint of tensors, arrays and plain values (for caching what a page computed)."""
    import hashlib

    h = hashlib.sha1()
    for p in parts:
        if isinstance(p, torch.Tensor):
            p = p.detach().cpu().numpy()
        h.update(np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray) else repr(p).encode())
    return h.hexdigest()[:16]


def remembered(key: str, compute: Callable[[], object], keep: int = 8):
    """``compute()`` once per key in this session (a rerun that changes nothing recomputes nothing)."""
    memo = st.session_state.setdefault("memo", {})
    if key not in memo:
        memo[key] = compute()
        while len(memo) > keep:
            memo.pop(next(iter(memo)))
    return memo[key]


def attempt(compute: Callable[[], object], what: str):
    """``compute()``, or None with a clear message in the page (never a traceback)."""
    try:
        return compute()
    except ValueError as exc:
        st.error(f"{plain(what)}: {plain(exc)}")
    except Exception as exc:  # a bug must not take the page down
        traceback.print_exc()
        st.error(f"{plain(what)} failed unexpectedly ({type(exc).__name__}: {plain(exc)}).")
    return None


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

"""Widgets the pages share, and the keys that decide when a widget keeps its value and when it starts afresh."""

from __future__ import annotations

import hashlib

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from playground.algorithms import AdaptOption


def fresh_key(name: str) -> str:
    """A key that changes with reset_inputs(), so a canvas or uploader under it starts empty again."""
    return f"{name}-{st.session_state.nonce}"


def reset_inputs() -> None:
    """Give every widget keyed with fresh_key() a new key: the next run shows them empty."""
    st.session_state.nonce += 1


def class_key(name: str) -> str:
    """A widget key that stays while the task's classes stay the same (so a chosen class is kept
    after adding an example) and changes when they change (so stale options never linger)."""
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


def option_widget(container: DeltaGenerator, option: AdaptOption, key: str) -> float:
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


CAMERA_HINT = (
    "Draw one glyph with a dark pen or marker on plain paper. Hold it so the glyph fills about half the "
    "frame, in even light; each photo is added as it is taken."
)


def camera_photo(label: str, key: str) -> bytes | None:
    """A camera for a photo of one glyph on paper: the photo's bytes once taken, else None.

    Key it with fresh_key() and call reset_inputs() after using a photo: the camera comes back
    ready for the next one instead of showing the last photo again.
    """
    shot = st.camera_input(label, key=key, help=CAMERA_HINT)
    return None if shot is None else shot.getvalue()

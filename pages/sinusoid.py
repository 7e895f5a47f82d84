"""Sine regression: MAML, a pretrained regressor and training from scratch fit K points, step by step."""

from __future__ import annotations

import traceback
from pathlib import Path

import pandas as pd
import streamlit as st

import playground.sinusoid as sinusoid
from playground.figures.sinusoid import fit_animation, fit_figure, loss_figure, method_label, point_from_selection
from playground.sinusoid import METHODS, SineRegressors, SineTask, SineTaskSampler, load_regressors
from playground.sinusoid.explore import MAX_POINTS, Exploration, card_mse, explore, lies_on, points_to_tensors, snap
from playground.sinusoid.model import check_lr
from playground.zoo.card import ModelCard
from playground.zoo.checkpoints import CheckpointError, read_card

ROOT = Path(__file__).resolve().parent.parent  # the checkpoint path is relative to the repository
SAMPLED, PLACED = "Sampled from a sine task", "Placed by clicking"
OWN_LR, ONE_LR = "Each method's own", "One for every method"
MAX_K = 10
MAX_STEPS = 100
CLICK_KEY = "sine_click"

ss = st.session_state
ss.setdefault("sine_seed", 0)
ss.setdefault("sine_points", [])  # placed (x, y) pairs; only the undo/clear buttons ever remove them
ss.setdefault("sine_flash", [])


@st.cache_resource(show_spinner="Loading the sine regressors…")
def regressors_at(path: str) -> SineRegressors:
    """The three regressors, loaded once per process and shared by every session (fitting never writes to them)."""
    return load_regressors(path)


@st.cache_data(show_spinner=False)
def card_at(path: str) -> ModelCard | None:
    return read_card(path)


@st.cache_data(max_entries=64, show_spinner="Fitting…")
def fitted(
    path: str,
    points: tuple[tuple[float, float], ...],
    steps: int,
    lr: float | None,
    methods: tuple[str, ...],
    wave: tuple[float, float] | None,
) -> Exploration:
    """`explore` for hashable inputs: moving the step slider or switching modes back refits nothing."""
    x, y = points_to_tensors(points)
    truth = None if wave is None else SineTask(wave[0], wave[1], x, y).true_curve
    return explore(regressors_at(path), x, y, steps, lr=lr, methods=methods, truth=truth)


def sampled_task(seed: int, k: int) -> SineTask:
    # Always 10 drawn, then the first k: changing K keeps the wave and the points already shown.
    return SineTaskSampler(seed).sample(MAX_K).with_shots(k)


def new_task() -> None:
    ss.sine_seed = int(ss.sine_seed) + 1


def on_click() -> None:
    """A click on the figure's placement layer adds that point (snapped onto the wave if asked)."""
    point = point_from_selection(ss.get(CLICK_KEY), curve=ss.get("sine_click_curve"))
    if point is None:  # a click that cleared the selection, or one off the placement layer
        return
    if len(ss.sine_points) >= MAX_POINTS:
        ss.sine_flash.append(f"At most {MAX_POINTS} points can be placed: remove some first.")
        return
    if ss.get("sine_snap"):
        point = snap(sampled_task(int(ss.sine_seed), 1), point[0])
    ss.sine_points.append(point)


def copy_sampled(task: SineTask) -> None:
    ss.sine_points = [(round(x, 3), round(y, 3)) for x, y in zip(task.support_x.tolist(), task.support_y.tolist())]


def undo() -> None:
    ss.sine_points = ss.sine_points[:-1]


def clear() -> None:
    ss.sine_points = []


st.title(":material/ssid_chart: Sine regression")
st.markdown(
    "Each task is a sine wave $y = A \\sin(x - \\varphi)$ with a random amplitude $A$ (0.1 to 5) and "
    "phase $\\varphi$ (0 to π); a learner sees only **K points** of it. Three small networks "
    "(1-40-40-1, ReLU) take the same few gradient steps on those points: **MAML**'s meta-learned starting "
    "weights, a **pretrained** regressor fitted to the points of many tasks at once, and untrained weights "
    "(**from scratch**). Watch which one finds the whole wave, not just the points "
    "(Finn et al. 2017, section 5.1)."
)
for text in ss.sine_flash:
    st.warning(text)
ss.sine_flash = []

path = str(ROOT / sinusoid.DEFAULT_PATH)  # read at run time, so a test can point it elsewhere
try:
    regressors = regressors_at(path)
except CheckpointError as exc:
    st.error(
        f"The sine regressors cannot be loaded: {exc}. Train them with "
        "`python -m playground sinusoid train --out assets/sinusoid/sinusoid.pt`."
    )
    st.stop()

controls, main = st.columns([1, 3], gap="medium")
with controls:
    mode = st.radio("Support points", [SAMPLED, PLACED], key="sine_mode", persist_state="session")
    st.number_input(
        "Task seed",
        min_value=0,
        max_value=2**31 - 1,
        step=1,
        key="sine_seed",
        persist_state="session",
        help="The same seed, the same wave.",
    )
    st.button("New task", icon=":material/casino:", key="sine_new_task", on_click=new_task, width="stretch")
    k = st.slider(
        "K: points sampled",
        1,
        MAX_K,
        5,
        key="sine_k",
        persist_state="session",
        help="The paper uses 5 and 10. A larger K keeps the same wave.",
    )
    own = ", ".join(f"{method_label(m)} {regressors.lrs[m]:g}" for m in METHODS)
    # A radio, not a toggle: its options wrap in a narrow column, where a toggle's label is cut off.
    lr_mode = st.radio(
        "Inner step size",
        [OWN_LR, ONE_LR],
        key="sine_lr_mode",
        persist_state="session",
        captions=[own, ""],
        help="Each method's own is the setting its model card measures.",
    )
    override = lr_mode == ONE_LR
    lr_in = None
    if override:
        lr_in = st.number_input(
            "Step size for every method (lr)",
            min_value=0.0,
            max_value=10.0,
            value=float(regressors.lrs["maml"]),
            step=0.005,
            format="%.4g",
            key="sine_lr",
            persist_state="session",
        )
    # Pills, not a multiselect: all three methods stay in view, chosen or not.
    methods = st.pills(
        "Methods",
        list(METHODS),
        selection_mode="multi",
        default=list(METHODS),
        format_func=method_label,
        key="sine_methods",
        persist_state="session",
        wrap=True,  # directly in a column pills keep one row and scroll: "from scratch" was cut off
    )
    methods = [m for m in METHODS if m in methods]  # the figure's and table's order, whatever the click order

task = sampled_task(int(ss.sine_seed), k)
if mode == PLACED:
    with main:  # the placing tools sit by the figure they act on
        with st.container(horizontal=True, vertical_alignment="center"):
            st.checkbox(
                "Snap onto the sampled wave",
                key="sine_snap",
                persist_state="session",
                help="A click then chooses only x; y is the sampled wave's value there, so the true curve is known.",
            )
            # Material icons, not emoji: a browser without an emoji font draws those as empty boxes.
            st.button(
                "Remove last", icon=":material/undo:", key="sine_undo", on_click=undo, disabled=not ss.sine_points
            )
            st.button("Clear", icon=":material/delete:", key="sine_clear", on_click=clear, disabled=not ss.sine_points)
            st.button(f"Copy the {k} sampled points", key="sine_copy", on_click=copy_sampled, args=(task,))

# The support points, and the wave they come from when there is one.
if mode == SAMPLED:
    points = tuple(zip(task.support_x.tolist(), task.support_y.tolist()))
    wave: tuple[float, float] | None = (task.amplitude, task.phase)
else:
    # Anything that is not a pair stays a 1-tuple, for points_to_tensors to refuse with a message.
    points = tuple(tuple(p) if isinstance(p, (list, tuple)) else (p,) for p in ss.sine_points)
    wave = None

support, problem = None, None  # problem: (how to show it, the message); it stops the fit, never the page
if points:
    try:
        support = points_to_tensors(points)
    except ValueError as exc:
        problem = (st.warning, f"The placed points cannot be fitted: {exc}. Remove the last or clear them.")
if mode == PLACED and support is not None and lies_on(task, *support):
    wave = (task.amplitude, task.phase)  # every placed point is on the sampled wave: its true curve applies

lr = None
if override:
    try:
        lr = check_lr(lr_in)
    except ValueError as exc:
        problem = (st.error, f"Step size: {exc}. Try 0.01 (MAML's) to 0.05; nothing is fitted until then.")

with main:
    # The one step control: the figure, its play button, the table and the losses all show this step.
    # (Plain SGD is deterministic, so the fit after s of S steps is the fit after s steps.)
    steps = st.slider(
        "Inner SGD steps",
        0,
        MAX_STEPS,
        10,
        key="sine_steps",
        persist_state="session",
        help="Each method takes this many gradient steps on the points. ▶ play on the figure replays them from step 0.",
    )
    if mode == PLACED:
        st.caption(
            f"**{len(points)} point{'s' if len(points) != 1 else ''} placed.** Click anywhere on the plot to add one."
        )
        if not points:
            st.info("No points placed yet: click on the figure to place one, or copy the sampled points.")
        elif support is not None and wave is None:
            st.info(
                "These points are your own, not on the sampled wave, so there is **no true curve** to compare "
                "with: the table shows only how closely each method fits your points. Tick *Snap onto the "
                "sampled wave* to place points on it."
            )
    if problem is not None:
        problem[0](problem[1])
    if not methods:
        st.warning("Choose at least one method to fit.")

    exploration = None
    if problem is None and support is not None and methods:
        try:
            exploration = fitted(path, points, steps, lr, tuple(methods), wave)
        except ValueError as exc:
            st.error(f"The fit failed: {exc}")
        except Exception as exc:  # a bug must not lose the placed points or show a traceback
            traceback.print_exc()
            st.error(f"The fit failed unexpectedly ({type(exc).__name__}: {exc}). Your points are kept.")

    curves = exploration.curves() if exploration is not None else {}
    grid = sinusoid.x_grid() if exploration is None else exploration.grid
    true_curve = None if wave is None else task.true_curve(grid)
    sx, sy = support if support is not None else (grid[:0], grid[:0])
    if mode == SAMPLED and curves and steps > 0:
        # Client-side animation: play watches the fit move from step 0 to the chosen step, without a rerun.
        st.plotly_chart(fit_animation(grid, true_curve, sx, sy, curves), key="sine_animation")
    else:
        fig = fit_figure(grid, true_curve, sx, sy, curves, clickable=mode == PLACED)
        if mode == PLACED:
            ss.sine_click_curve = len(fig.data) - 1  # the placement layer; on_click reads it on the next run
            st.plotly_chart(fig, key=CLICK_KEY, on_select=on_click, selection_mode="points")
        else:
            st.plotly_chart(fig, key="sine_static")

    if exploration is not None:
        card = card_at(path) if mode == SAMPLED else None  # the card's tasks are sampled ones
        rows = []
        for r in exploration.table():
            row = {
                "method": method_label(r["method"]),
                "step size": r["lr"],
                f"support MSE ({len(points)} points)": r["support_mse"],
            }
            if wave is not None:
                row["MSE vs true curve"] = r["true_mse"]
            typical = card_mse(card, r["method"], k, steps, r["lr"])
            if typical is not None:
                row["typical MSE vs true curve (600 test tasks)"] = typical
            rows.append(row)
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            column_config={
                c: st.column_config.NumberColumn(format="%.4f") for c in rows[0] if "MSE" in c and "typical" not in c
            },
        )
        st.caption(
            f"After {steps} step{'s' if steps != 1 else ''}. Support MSE: on the points the methods were fitted to. "
            + ("MSE vs true curve: over 100 evenly spaced x in [-5, 5], the model card's measure. " if wave else "")
        )
        for m, run in exploration.runs.items():
            if run.diverged:
                st.warning(
                    f"{method_label(m)} diverged with step size {run.lr:g} (its support MSE became inf or NaN): "
                    "use a smaller step size."
                )
        st.plotly_chart(
            loss_figure(
                {m: r.support_mse for m, r in exploration.runs.items()},
                {m: r.true_mse for m, r in exploration.runs.items()},
            ),
            key="sine_losses",
        )

"""Meta-train live: watch a network learn to learn, then use it on the other pages."""

from __future__ import annotations

import uuid
from pathlib import Path

import streamlit as st

from playground.algorithms import learner_class
from playground.figures.live import embedding_snapshots, inner_step_losses, probe_accuracy, training_curves
from playground.training.live import (
    BUDGETS,
    INNER_STEPS,
    SHOTS,
    WAYS,
    JobView,
    LiveSettings,
    has_inner_loop,
    live_algorithms,
    scheduler,
    shipped_recipe,
)
from playground.ui.data import offer_download
from playground.ui.display import plain
from playground.ui.resources import add_own_model, own_models
from playground.ui.session import client_gone, guarded, state, try_sample_task
from playground.zoo.card import ModelCard
from playground.zoo.shipped import SessionModel, shipped_models

SHIPPED = {e.name: e for e in shipped_models()}
# What a minute of meta-training reaches, measured by `python -m bench.live_training --algorithm protonet maml
# --budget 60 --episodes 600` on the 2-core machine with nothing else running: the one place the page cites it.
# README.md (The app) and docs/app.md (What a minute reaches) repeat it: update the three together.
MINUTE_FIGURE = (
    "On a 2-core server, one minute takes ProtoNet to **92.0 ± 0.6 %** and MAML to **79.2 ± 1.5 %** 5-way 1-shot "
    "accuracy on new alphabets (600 episodes, 95% interval); the shipped models, trained for about an hour, reach "
    f"{SHIPPED['protonet_lake'].headline()} and {SHIPPED['maml_lake'].headline()}."
)

STILL = {"displayModeBar": False}  # the charts redraw every second: a toolbar would only cover their titles

ss = state()
st.title("Meta-train live")
st.caption(
    "The shipped models were meta-trained offline for an hour or more. Here a network learns to learn in "
    "front of you: it meets thousands of small tasks from the training alphabets, and every few seconds it is "
    f"tested on the same 40 one-shot tasks from alphabets it never sees. {MINUTE_FIGURE}"
)

if not offer_download("Meta-training draws its tasks from Omniglot, which is not installed here.", key="live_data"):
    st.stop()

job = ss.get("live_job")
view: JobView | None = job.view() if job is not None else None
active = view is not None and not view.finished

algorithms = live_algorithms()
c1, c2, c3, c4, c5 = st.columns([2, 1, 1, 1, 2])
algorithm = c1.selectbox(
    "Algorithm",
    algorithms,
    index=algorithms.index("protonet") if "protonet" in algorithms else 0,
    format_func=lambda a: learner_class(a).title,
    key="live_algorithm",
    disabled=active,
)
ways = c2.number_input("Ways", WAYS[0], WAYS[1], 5, key="live_ways", disabled=active, help="classes per task")
shots = c3.number_input("Shots", SHOTS[0], SHOTS[1], 1, key="live_shots", disabled=active, help="examples per class")
inner_steps = None
if has_inner_loop(algorithm):
    default_steps = int(shipped_recipe(algorithm)[0].get("inner_steps", 1))
    inner_steps = c4.number_input(
        "Inner steps",
        INNER_STEPS[0],
        INNER_STEPS[1],
        min(max(default_steps, INNER_STEPS[0]), INNER_STEPS[1]),
        key=f"live_steps_{algorithm}",
        disabled=active,
        help="gradient steps on each task's support set during meta-training",
    )
budget = c5.segmented_control(
    "Budget", BUDGETS, default=60, format_func=lambda s: f"{s} s", key="live_budget", disabled=active
)

b1, b2, _ = st.columns([1, 1, 4])
# Once a model is trained, trying it is the next step; starting another is still there, but not primary.
start_kind = "secondary" if own_models() else "primary"
if b1.button("Start", type=start_kind, icon=":material/play_arrow:", disabled=active, key="live_start"):
    try:
        settings = LiveSettings(algorithm, int(ways), int(shots), inner_steps and int(inner_steps), budget or 60)
        ss.live_job = scheduler().submit(settings, alive=lambda gone=client_gone(): not gone())
        ss.live_added = False
        st.rerun()
    except ValueError as exc:
        st.error(f"Could not start: {plain(exc)}")
if b2.button("Stop", icon=":material/stop:", disabled=not active, key="live_stop"):
    job.cancel()


if own_models():
    names = ", ".join(f"**{plain(m.label)}**" for m in own_models().values())
    st.success(f"Yours, in this session only: {names}. They are chosen in the sidebar's model list.")
    has_task = not ss.task.problems()
    label = "Use it in Adapt and predict" if has_task else "Try it on a sample task"
    if st.button(label, icon=":material/rocket_launch:", type="primary", key="live_use"):
        if has_task:
            ss.autorun = bool(ss.queries)  # Adapt and predict predicts at once, with it among the chosen models
        else:
            guarded(try_sample_task, "Sampling a task")
        st.switch_page("pages/adapt_predict.py")


def draw(view: JobView) -> None:
    """The run's state, curves, embedding and inner-step losses."""
    s = view.settings
    if view.state == "queued":
        st.info(
            f"Another visitor's model is training: yours is number **{view.position}** in the queue and should "
            f"start in about **{view.wait:.0f} s**. Leave this page open, or Stop to leave the queue."
        )
        return
    if view.state == "starting":
        st.info("Starting: loading the alphabets and measuring the untrained and the shipped model…")
    elif view.state == "running":
        st.info(f"Training **{plain(s.label)}**: {view.iterations} iterations, **{view.time_left:.0f} s** left.")
    elif view.state in ("done", "stopped"):
        st.success(f"**{plain(s.label)}** is trained ({view.iterations} iterations; {plain(view.message)}).")
    elif view.has_model:
        st.warning(f"The run ended early ({plain(view.message)}); its model as of the last snapshot is kept.")
    else:
        st.warning(f"The run ended without a model: {plain(view.message)}.")
    if not view.progress and not view.snapshots:
        return
    left, right = st.columns(2)
    left.plotly_chart(training_curves(view.progress, s.budget), key="live_curves", config=STILL)
    right.plotly_chart(probe_accuracy(view.snapshots, view.references, s.budget), key="live_probe", config=STILL)
    embedding = embedding_snapshots(view.snapshots, view.characters)
    steps = inner_step_losses(view.snapshots, view.references)
    # The embedding's two panels and its legend need the width that a learner without inner steps leaves.
    left, right = st.columns(2) if steps is not None else (st.container(), None)
    if embedding is not None:
        left.plotly_chart(embedding, key="live_embedding", config=STILL)
        left.caption(
            "Ten drawings of each of six characters from alphabets never trained on, in one projection (the "
            "principal components of the latest model's embedding), each panel on its own scale. Meta-training "
            "pulls each character together."
        )
    if steps is not None:
        right.plotly_chart(steps, key="live_steps", config=STILL)
        right.caption(
            "Support loss after each inner step, averaged over 8 of the fixed tasks, from the initialisation as it "
            "is at each moment: meta-training looks for one that a few steps adapt well."
        )


@st.fragment(run_every=1.0 if active else None)
def live() -> None:
    job = ss.get("live_job")
    if job is None:
        st.info("Pick an algorithm and a budget, then press **Start**.")
        return
    view = job.view()
    draw(view)
    if view.finished and not ss.get("live_added"):
        ss.live_added = True
        learner = job.learner()
        if learner is not None:
            name = f"yours-{view.settings.algorithm}-{uuid.uuid4().hex[:8]}"
            card = ModelCard(algorithm=view.settings.algorithm, note="trained live in this session")
            add_own_model(SessionModel(name, Path(name), card, label=view.settings.label, learner=learner))
        st.rerun(scope="app")  # the sidebar's model list now holds it, and the page stops polling


live()

"""Page: inside one model: its embedding of the task, its adaptation step by step, what it decides from."""

from __future__ import annotations

import streamlit as st

from playground.algorithms import StepRecord
from playground.figures.charts import adaptation_curve
from playground.figures.explorer import (
    confusion_figure,
    decision_heatmap,
    embedding_figure,
    probability_steps,
    steps_animation,
)
from playground.interactive.explain import (
    adaptation_steps,
    confusion_matrix,
    decision_matrices,
    embedding_view,
    steps_option,
    steps_to_watch,
)
from playground.interactive.imaging import from_tensor, to_tensor
from playground.interactive.sample_tasks import sample_distractors
from playground.ui.data import offer_download
from playground.ui.display import short_names
from playground.ui.resources import current_device, load_models, load_omniglot_cached, omniglot_present
from playground.ui.session import attempt, digest, remembered, require_task, show_flash, state

METHODS = {"tsne": "t-SNE", "pca": "PCA"}
ss = state()
st.title(":material/scatter_plot: Explore a model")
st.caption(
    "See a task through one model's eyes: where it places every image, how adapting moves them, "
    "and the numbers each prediction is made from."
)
show_flash()
support_x, support_y, names, query_x, query_labels = require_task()
labels = short_names(names)
models = load_models(current_device())
if not models:
    st.warning("Choose at least one model in the sidebar.")
    st.stop()
name = st.selectbox("Model", list(models), key="explore_model", persist_state="session")
learner = models[name][1]
task_key = digest(support_x, support_y, query_x, query_labels, names, name, current_device())
if not len(query_x):
    st.info("No queries yet: add some on **Adapt and predict** to see them placed among the support set.")

embedding_tab, steps_tab, decisions_tab = st.tabs(["Embedding", "Adaptation step by step", "Decisions"])

with embedding_tab:
    c1, c2, c3 = st.columns([2, 3, 2])
    method = c1.radio(
        "Projection",
        list(METHODS),
        format_func=METHODS.get,
        horizontal=True,
        key="explore_method",
        persist_state="session",
    )
    n_distractors = c2.slider(
        "Distractors (other Omniglot characters)",
        0,
        60,
        0,
        step=5,
        key="explore_distractors",
        persist_state="session",
        disabled=not omniglot_present(),
        help="Drawings of other characters from the evaluation alphabets, in grey, for context.",
    )
    if not omniglot_present():
        offer_download("Distractors are drawings from Omniglot, which is not installed here.", key="download")
    thumbnails = c3.toggle(
        "Draw the glyphs", key="explore_thumbnails", persist_state="session", help="Each point drawn as its image."
    )

    def compute_view():
        distractors = None
        if n_distractors:
            images = sample_distractors(load_omniglot_cached(), n_distractors, seed=0, exclude=set(names))
            distractors = to_tensor(images)
        return embedding_view(learner, support_x, support_y, query_x, labels, query_labels, distractors, method=method)

    view = attempt(lambda: remembered(f"view-{task_key}-{method}-{n_distractors}", compute_view), "The embedding")
    if view is not None:
        st.plotly_chart(embedding_figure(view, thumbnails), key="explore_embedding", width="stretch")
        wrong = len(view.misclassified)
        shapes = (
            "Each image is drawn where the model places it, in its class's colour; queries sit in a dashed frame"
            if thumbnails
            else "Circles are the support images, diamonds the queries"
        )
        st.caption(
            f"{shapes}, stars are the prototypes (the point per class that a query is compared with), each "
            f"line joins a query to its nearest prototype. {'A red ring marks a wrong prediction. ' if wrong else ''}"
            f"{view.note}. Distances in 2-D are only roughly those the model uses: t-SNE keeps neighbours, "
            "PCA the largest differences."
        )

with steps_tab:
    high = steps_option(learner)
    if high is None:
        st.info(
            f"**{name}** has no inner loop: it adapts in one pass, so there are no steps to watch. "
            "Choose a gradient-based model (MAML, Meta-SGD, ANIL, Reptile, the LSTM meta-learner)."
        )
    else:
        c1, c2 = st.columns([3, 2])
        # Where Adapt and predict stops on this task; the key carries the task size, as that page's settings do.
        watch = steps_to_watch(learner, support_y)
        size = f"{len(names)}x{round(len(support_y) / len(names))}"
        max_steps = c1.slider(
            "Inner steps",
            1,
            min(high, max(25, watch)),
            max(1, watch),
            key=f"explore_steps-{name}-{size}",
            persist_state="session",
        )
        steps_method = c2.radio(
            "Projection",
            list(METHODS),
            index=1,
            format_func=METHODS.get,
            horizontal=True,
            key="explore_steps_method",
            persist_state="session",
        )
        run = attempt(
            lambda: remembered(
                f"steps-{task_key}-{max_steps}-{steps_method}",
                lambda: adaptation_steps(
                    learner, support_x, support_y, query_x, max_steps, query_labels, method=steps_method
                ),
            ),
            "Adapting step by step",
        )
        if run is not None:
            st.plotly_chart(
                steps_animation(run, labels, f"{name}: adapting step by step (press ▶ play)"),
                key="explore_animation",
                width="stretch",
            )
            moved = run.motion()
            still = (
                f" The points hardly move (at most {moved:.0%} of the plot): adapting changes how the "
                "model's last layers read these features far more than the features themselves."
                if moved < 0.05
                else ""
            )
            st.caption(
                "Each point is filled with the class the model gives it after that step (grey: no "
                "preference yet), with a red ring where that is not its class; the bars are each "
                f"{'query' if len(query_x) else 'support image'}'s class probabilities.{still}"
            )
            trace = [StepRecord(s, loss, acc) for s, loss, acc in zip(run.steps, run.trace_loss, run.support_accuracy)]
            st.plotly_chart(adaptation_curve(trace, f"{name}: the support set while adapting"), key="explore_curve")
            if len(query_x):
                q = st.selectbox("Query", range(len(query_x)), format_func=lambda i: f"Q{i + 1}", key="explore_query")
                st.plotly_chart(probability_steps(run, labels, q), key="explore_query_steps")

with decisions_tab:
    if not len(query_x):
        st.info("Add queries on **Adapt and predict**: decisions are made about queries.")
    else:
        matrices = attempt(
            lambda: remembered(
                f"decisions-{task_key}", lambda: decision_matrices(learner, support_x, support_y, query_x)
            ),
            "The decision matrices",
        )
        rows = [f"Q{i + 1}" for i in range(len(query_x))]
        query_images, support_images = from_tensor(query_x), from_tensor(support_x)
        first_of_class = [support_images[int((support_y == c).nonzero()[0])] for c in range(len(names))]
        for m in matrices or []:
            if m.columns == "support":
                cols = [f"S{i + 1} ({labels[int(c)]})" for i, c in enumerate(support_y)]
                col_images = support_images
            else:
                cols, col_images = labels, first_of_class
            st.plotly_chart(
                decision_heatmap(m.values.numpy(), rows, cols, f"{name}: {m.title}", m.unit, query_images, col_images),
                key=f"explore_matrix-{m.title}",
                width="stretch",
            )
        if matrices and any(label is not None for label in query_labels):
            predicted = matrices[0].values.argmax(-1).tolist()
            st.plotly_chart(
                confusion_figure(confusion_matrix(query_labels, predicted, len(names)), labels),
                key="explore_confusion",
            )
        elif matrices:
            st.caption("Give queries their true class on **Adapt and predict** to see a confusion matrix.")

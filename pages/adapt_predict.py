"""Page 2: add queries, adapt every pretrained model on the support set, compare predictions."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from playground.figures.charts import adaptation_curve, probability_bars
from playground.figures.explorer import image_uri as glyph_uri
from playground.interactive.imaging import preprocess_image, to_tensor
from playground.interactive.inference import predict_task, prediction_grid, task_adapt_options
from playground.ui.canvas import drawing_canvas, drawn_glyph
from playground.ui.display import plain, short_names, thumbnail
from playground.ui.export_button import classifier_download
from playground.ui.resources import current_device, load_models, model_catalogue
from playground.ui.session import Query, flash, guarded, show_flash, state
from playground.ui.widgets import CAMERA_HINT, camera_photo, class_key, fresh_key, option_widget, reset_inputs
from playground.zoo.shipped import model_titles

MAX_QUERIES = 40
RIGHT_WRONG = {True: "background-color: #dff3e3", False: "background-color: #fbe1e1"}
ss = state()
task = ss.task
st.title("⚡ Adapt and predict")
show_flash()

problems = task.problems()
if problems:
    st.warning("Finish the task first:\n" + "\n".join(f"- {plain(p)}" for p in problems))
    st.page_link("pages/build_task.py", label="Go to Build a task", icon="✏️")
    st.stop()

UNKNOWN = "unknown"
label_options = [UNKNOWN] + list(range(task.n_way))


def label_name(v) -> str:
    return "true class: unknown" if v == UNKNOWN else f"true class: {task.class_names[v]}"


def add_query(image, label, source: str) -> None:
    if len(ss.queries) >= MAX_QUERIES:
        raise ValueError(f"at most {MAX_QUERIES} queries")
    ss.queries.append(Query(image, None if label == UNKNOWN else label, source))
    ss.results = None


def true_class_box(label: str, key: str):
    """A query's true class, or "unknown"; its options follow the task's class names."""
    return st.selectbox(label, label_options, format_func=label_name, key=class_key(key), persist_state="session")


def queries_section() -> None:
    """Add queries by drawing, uploading or photographing; remove them."""
    draw_tab, upload_tab, camera_tab = st.tabs(["Draw a query", "Upload queries", "Camera"])
    with draw_tab:
        c1, c2 = st.columns([3, 2])
        with c2:
            stroke = st.slider("Stroke width", 4, 30, 14, key="q_stroke", persist_state="session")
            q_label = true_class_box("If you know it", "q_label")
        with c1:
            drawing = drawing_canvas(fresh_key("qcanvas"), stroke)
        with c2:
            if st.button("Add query", type="primary", key="add_query"):

                def _add() -> None:
                    add_query(drawn_glyph(drawing), q_label, "drawn")
                    reset_inputs()

                guarded(_add, "Adding the query")
                st.rerun()
    with upload_tab:
        files = st.file_uploader(
            "Query images", type=["png", "jpg", "jpeg", "webp"], accept_multiple_files=True, key=fresh_key("q_upload")
        )
        up_label = true_class_box("True class of these (if known)", "up_label")
        if st.button("Add uploaded queries", disabled=not files, key="add_q_uploads"):
            room = MAX_QUERIES - len(ss.queries)
            if len(files) > room:  # decode no more files than there is room for
                flash("error", f"At most {MAX_QUERIES} queries: {len(files) - room} file(s) were not added.")
            for f in files[:room]:
                guarded(lambda f=f: add_query(preprocess_image(f.getvalue(), f.name), up_label, f.name), f"'{f.name}'")
            reset_inputs()
            st.rerun()
    with camera_tab:
        c1, c2 = st.columns([3, 2])
        with c2:
            cam_label = true_class_box("If you know it", "cam_label")
            st.caption(CAMERA_HINT)
        with c1:
            photo = camera_photo("Photo of a query glyph on paper", fresh_key("q_camera"))
        if photo is not None:
            guarded(lambda: add_query(preprocess_image(photo, "the photo"), cam_label, "photo"), "Adding the photo")
            reset_inputs()
            st.rerun()
    cols = st.columns(10)
    for i, q in enumerate(ss.queries):
        with cols[i % 10]:
            st.image(thumbnail(q.image), width=56, caption=f"Q{i + 1}")
            if st.button("✕", key=f"rmq-{i}", help="remove this query"):
                del ss.queries[i]
                ss.results = None
                st.rerun()
    if ss.queries and st.button("Remove all queries", key="clear_queries"):
        ss.queries, ss.results = [], None
        st.rerun()


# The task at a glance: what the models learn from, one glyph a class under its name.
labels = short_names(task.class_names, 16)
st.caption(f"Your task: {task.n_way} classes, {sum(task.shots)} examples. What the models learn from:")
st.dataframe(
    pd.DataFrame([{labels[i]: glyph_uri(task.examples[i][0]) for i in range(task.n_way)}]),
    hide_index=True,
    column_config={name: st.column_config.ImageColumn(name, width="small") for name in labels},
    row_height=40,
)

if not ss.queries:
    st.subheader("Queries")
    st.info(
        "Add at least one query: draw, upload or photograph a glyph to classify (a sampled task comes with queries)."
    )
    queries_section()
    st.stop()

models = load_models(current_device())
if not models:
    st.warning("Choose at least one model in the sidebar.")
    st.stop()
# The pages name models as the sidebar does ("ProtoNet"), not by file.
title = model_titles(list(model_catalogue().values()))
settings: dict[str, dict[str, float]] = {}
# Each model's steps and step size start where its card was measured at the nearest task size. The widgets'
# keys carry the task size: their values are kept while the user visits other pages, and a task of a new size
# starts anew.
task_size = (task.n_way, round(sum(task.shots) / task.n_way))
options = {
    name: task_adapt_options(learner, entry.adapt_defaults(*task_size))
    for name, (entry, learner) in models.items()
    if learner.adapt_options()
}
left, right = st.columns([1, 3], vertical_alignment="center")
# "Try a sample task" lands here with its queries: predictions come without a second click.
clicked = left.button("Adapt and predict", icon=":material/rocket_launch:", type="primary", key="adapt")
with right:
    if options:
        with st.expander(
            f"{len(models)} models adapt to your {task.n_way} classes and classify your {len(ss.queries)} "
            f"quer{'y' if len(ss.queries) == 1 else 'ies'}. Test-time settings of the gradient-based models",
            expanded=False,
        ):
            st.caption(
                f"Inner steps and learning rate start at what each model's card was measured with at the nearest "
                f"task size ({task_size[0]}-way {task_size[1]}-shot here, chosen on validation; where the card names "
                "no rate, the one it was meta-trained with). First- and second-order MAML differ only in how the "
                "initialisation was meta-trained: adapting is plain gradient descent either way."
            )
            for name, opts in options.items():
                cols = st.columns([2] + [3] * len(opts))
                cols[0].markdown(f"**{title[name]}**")
                settings[name] = {
                    o.name: option_widget(col, o, key=f"opt-{name}-{o.name}-{task_size[0]}x{task_size[1]}")
                    for col, o in zip(cols[1:], opts)
                }
    else:
        st.caption(
            f"{len(models)} models adapt to your {task.n_way} classes and classify your {len(ss.queries)} queries."
        )

if clicked or ss.pop("autorun", False):

    def _run() -> None:
        support_x, support_y, _ = task.support()
        query_x = to_tensor([q.image for q in ss.queries])
        learners = {name: learner for name, (_, learner) in models.items()}
        results = predict_task(learners, support_x, support_y, query_x, [q.label for q in ss.queries], settings)
        ss.results = {
            "class_names": list(task.class_names),
            "results": results,
            "n_queries": len(ss.queries),
            "support": (support_x, support_y),  # what the download exports: the task these predictions came from
            "settings": settings,
        }

    with st.spinner("Adapting…"):
        guarded(_run, "Adapting")
    show_flash()  # results render below in this same run: no second rerun after the click

res = ss.results
if res is not None and (res["n_queries"] != len(ss.queries) or res["class_names"] != list(task.class_names)):
    st.info("The task or queries changed since the last run: click **Adapt and predict** again.")
    res = None

if res is not None:
    names = res["class_names"]
    for r in res["results"]:
        if r.error:
            st.error(f"{title[r.model]}: {plain(r.error)}")
        elif r.warning:
            st.warning(
                f"**{title[r.model]}**: {plain(r.warning)} Both are in the test-time settings beside "
                "**Adapt and predict**."
            )

    ok = [r for r in res["results"] if not r.error]
    grid = prediction_grid(ok, [q.label for q in ss.queries])
    shown = short_names(names, 20)
    first_glyph = [glyph_uri(task.examples[c][0]) for c in range(task.n_way)]
    rows = []
    for i, (q, picks) in enumerate(zip(ss.queries, grid)):
        row = {"query": glyph_uri(q.image), "#": f"Q{i + 1}", "true class": "—" if q.label is None else shown[q.label]}
        for model, pick in picks.items():
            mark = {True: "✓ ", False: "✗ ", None: ""}[pick.right]
            row[f"{model} glyph"] = first_glyph[pick.predicted]
            row[model] = f"{mark}{shown[pick.predicted]} · {100 * pick.confidence:.0f}%"
        rows.append(row)
    table = pd.DataFrame(rows)
    verdict = {m: [p[m].right for p in grid] for m in (r.model for r in ok)}
    styled = table.style.apply(
        lambda col: [RIGHT_WRONG.get(v, "") for v in verdict[col.name]] if col.name in verdict else [""] * len(col)
    )
    config = {
        "query": st.column_config.ImageColumn("query", width="small"),
        "#": st.column_config.TextColumn("#", width=40),
    }
    config.update({f"{r.model} glyph": st.column_config.ImageColumn("", width="small") for r in ok})
    for r in ok:  # each model's accuracy on the labelled queries heads its column
        score = "" if r.accuracy is None else f" · {100 * r.accuracy:.0f}% right"
        config[r.model] = st.column_config.TextColumn(f"{title[r.model]}{score}" + (" (overshot)" if r.warning else ""))
    times = "; ".join(
        f"{title[r.model]} {r.adapt_ms:.0f} ms to adapt, {r.predict_ms:.0f} to predict" for r in res["results"]
    )
    st.caption(
        "Each model's pick for each query: the picked class's first example, its name and the model's "
        f"confidence; green is right, red is wrong. Click a row to see every class's probability. On "
        f"{current_device()}: {times}."
    )
    picked = st.dataframe(
        styled,
        hide_index=True,
        width="stretch",
        column_config=config,
        row_height=36,
        on_select="rerun",
        selection_mode="single-row",
        key="prediction_grid",
    )
    selected = picked.selection.rows if picked is not None else []
    i = selected[0] if selected else 0
    with st.container(border=True):
        st.markdown(f"**Q{i + 1}: every class's probability**")
        cols = st.columns(max(1, len(ok)))
        for col, r in zip(cols, ok):
            pick = grid[i][r.model]
            mark = {True: " ✓", False: " ✗", None: ""}[pick.right]
            col.markdown(
                f"**{title[r.model]}** → **{plain(names[pick.predicted])}**{mark} ({100 * pick.confidence:.0f}%)"
            )
            col.plotly_chart(
                probability_bars(r.proba[i].tolist(), names, pick.predicted),
                key=f"bars-{r.model}",
                width="stretch",
                config={"displayModeBar": False},  # its toolbar would cover these small charts
            )
    with st.expander("Accuracy, timing and status of each model"):
        summary = pd.DataFrame(
            [
                {
                    "model": r.model,
                    "accuracy": "—" if r.accuracy is None else f"{100 * r.accuracy:.0f}%",
                    "adapt (ms)": round(r.adapt_ms, 1),
                    "predict (ms)": round(r.predict_ms, 1),
                    "status": r.error or ("overshot: see the warning above" if r.warning else "ok"),
                }
                for r in res["results"]
            ]
        )
        st.dataframe(
            summary,
            hide_index=True,
            width="stretch",
            column_config={
                "adapt (ms)": st.column_config.NumberColumn(format="%.1f"),
                "predict (ms)": st.column_config.NumberColumn(format="%.1f"),
            },
        )
    curves = [r for r in ok if len(r.trace) > 1]
    if curves:
        with st.expander("How the gradient-based models adapted: support loss and accuracy after each inner step"):
            for r in curves:
                st.plotly_chart(
                    adaptation_curve(r.trace, f"{title[r.model]}: adaptation on the support set"),
                    key=f"curve-{r.model}",
                )
    classifier_download(models, [r.model for r in ok], res["support"], names, res["settings"])
    c1, c2 = st.columns(2)
    c1.page_link("pages/explorer.py", label="Why? See inside a model", icon=":material/scatter_plot:")
    c2.page_link("pages/compare.py", label="Compare the models on this task", icon=":material/balance:")

st.subheader("Queries")
queries_section()

"""Page 1: build an N-way K-shot task by drawing, uploading, sampling or importing."""

from __future__ import annotations

import streamlit as st

from playground.interactive.imaging import preprocess_image
from playground.interactive.sample_tasks import sample_user_task
from playground.interactive.task_io import MAX_EXAMPLES_PER_CLASS, export_task_zip, import_task_zip
from playground.ui.canvas import drawing_canvas, drawn_glyph
from playground.ui.data import offer_download
from playground.ui.display import plain, thumbnail
from playground.ui.resources import demo_task, load_omniglot_cached, omniglot_present
from playground.ui.session import (
    Query,
    flash,
    forget_class,
    guarded,
    rename_class,
    replace_task,
    show_flash,
    state,
    try_sample_task,
    undo_replace,
)
from playground.ui.widgets import CAMERA_HINT, camera_photo, class_picker, fresh_key, reset_inputs

ss = state()
task = ss.task
st.title("✏️ Build a task")
show_flash()


if sum(task.shots) == 0:  # nothing built yet: show what the playground does, not what is missing
    st.markdown("#### Show a model one drawing of each new character: it learns them in milliseconds.")
    demo = demo_task() if omniglot_present() else None
    c1, c2, c3 = st.columns(3)
    with c1:
        st.markdown("**1. A few examples**")
        if demo:
            st.image([thumbnail(e[0]) for e in demo.task.examples], width=44)
        st.caption("Characters the models never saw in training, one drawing each (or your own glyphs).")
    with c2:
        st.markdown("**2. The models adapt**")
        st.caption(
            "ProtoNet, MAML and twelve more meta-learners adapt to this brand-new task from those few "
            "examples, each in its own way."
        )
    with c3:
        st.markdown("**3. They predict, and show why**")
        if demo:
            st.image([thumbnail(q) for q in demo.queries], width=44)
        st.caption("New drawings recognised; prototypes, attention and adaptation step by step.")
    if demo:
        if st.button("Try a sample task", icon=":material/play_arrow:", type="primary", key="try_sample"):
            guarded(try_sample_task, "Sampling a task")
            if ss.get("autorun"):
                st.switch_page("pages/adapt_predict.py")
            st.rerun()
        st.caption(
            "Or make your own task below: draw, upload, photograph or import one to five examples of each class."
        )
    else:
        offer_download("The sample tasks come from Omniglot, which is not installed here.", key="download_first")
        st.caption("Or make your own task below: draw, upload or photograph one to five examples of each class.")
else:
    problems = task.problems()
    if problems:
        st.warning("The task is not ready yet:\n" + "\n".join(f"- {plain(p)}" for p in problems))
    else:
        st.success(f"Task ready: {task.n_way} classes, {sum(task.shots)} examples. Go to **Adapt and predict**.")
        st.page_link("pages/adapt_predict.py", label="Adapt and predict", icon="⚡")

if ss.get("undo"):
    old, n = ss.undo[0], sum(ss.undo[0].shots)
    st.button(
        f"Undo: bring back your task ({old.n_way} classes, {n} example{'' if n == 1 else 's'})",
        icon=":material/undo:",
        key="undo_replace",
        on_click=undo_replace,
    )

# Keyed and tracked, the open tab is kept by the server: a rerun (a file chosen, a message shown
# above) no longer sends the person back to the first tab with their file hidden in another.
add_tab, upload_tab, camera_tab, sample_tab, file_tab = st.tabs(
    ["Draw", "Upload images", "Camera", "Surprise me (Omniglot)", "Import / export"],
    key="build_way",
    on_change="rerun",
)

with add_tab:
    left, right = st.columns([3, 2])
    with right:
        target = class_picker("Add to class", "draw_target")
        stroke = st.slider("Stroke width", 4, 30, 14, key="stroke_width", persist_state="session")
        st.caption("Hover over the canvas for its toolbar (undo, redo, clear). Each drawing is one example.")
    with left:
        drawing = drawing_canvas(fresh_key("canvas"), stroke)
    with right:
        if st.button("Add drawing", type="primary", key="add_drawing"):

            def _add_drawing() -> None:
                task.add_example(target, drawn_glyph(drawing))
                reset_inputs()
                flash("success", f"Added a drawing to '{plain(task.class_names[target])}'.")

            guarded(_add_drawing, "Adding the drawing")
            st.rerun()

with upload_tab:
    target_up = class_picker("Add to class", "upload_target")
    files = st.file_uploader(
        "Images of one class (PNG, JPEG, WebP)",
        type=["png", "jpg", "jpeg", "webp"],
        accept_multiple_files=True,
        key=fresh_key("uploader"),
    )
    if st.button("Add uploaded images", disabled=not files, key="add_uploads"):
        added: list[str] = []
        room = task.room(target_up)
        if len(files) > room:  # decode no more files than the class can take
            flash(
                "error",
                f"'{plain(task.class_names[target_up])}' can take {room} more example(s) (at most "
                f"{MAX_EXAMPLES_PER_CLASS} examples a class); {len(files) - room} file(s) were not added.",
            )
        for f in files[:room]:

            def _add_file(f=f) -> None:
                task.add_example(target_up, preprocess_image(f.getvalue(), f.name))
                added.append(f.name)

            guarded(_add_file, f"'{f.name}'")
        if added:
            flash("success", f"Added {len(added)} image(s) to '{plain(task.class_names[target_up])}'.")
        reset_inputs()
        st.rerun()

with camera_tab:
    left, right = st.columns([3, 2])
    with right:
        target_cam = class_picker("Add to class", "camera_target")
        st.caption(CAMERA_HINT)
    with left:
        photo = camera_photo("Photo of a glyph on paper", fresh_key("camera"))
    if photo is not None:

        def _add_photo() -> None:
            task.add_example(target_cam, preprocess_image(photo, "the photo"))
            flash("success", f"Added a photo to '{plain(task.class_names[target_cam])}'.")

        guarded(_add_photo, "Adding the photo")
        reset_inputs()  # the camera comes back ready for the next photo
        st.rerun()

with sample_tab:
    if not omniglot_present():
        if sum(task.shots) == 0:  # the first screen above offers the download already
            st.info("Sampling needs Omniglot, which is not installed here: download it above.")
        else:
            offer_download("Sampling needs Omniglot, which is not installed here.", key="download_sample")
    else:
        data = load_omniglot_cached()
        alphabets = ["any alphabet"] + data.alphabet_names("images_evaluation")
        c1, c2, c3, c4 = st.columns(4)
        alphabet = c1.selectbox("Alphabet", alphabets, key="sample_alphabet", persist_state="session")
        n_way = c2.number_input("Classes (N)", 2, 20, 5, key="sample_n", persist_state="session")
        k_shot = c3.number_input(
            "Examples per class (K)", 1, MAX_EXAMPLES_PER_CLASS, 1, key="sample_k", persist_state="session"
        )
        n_query = c4.number_input("Queries per class", 1, 5, 2, key="sample_q", persist_state="session")
        st.caption("Replaces the current task and queries with characters the models never saw in training.")
        if st.button("Surprise me", icon=":material/casino:", key="sample_button"):

            def _sample() -> None:
                s = sample_user_task(
                    data, int(n_way), int(k_shot), int(n_query), None if alphabet == alphabets[0] else alphabet
                )
                replace_task(s.task, [Query(img, lab, "Omniglot") for img, lab in zip(s.queries, s.query_labels)])
                reset_inputs()
                flash("success", f"Sampled a {s.task.n_way}-way {k_shot}-shot task with {len(s.queries)} queries.")

            guarded(_sample, "Sampling a task")
            st.rerun()

with file_tab:
    c1, c2 = st.columns(2)
    with c1:
        st.download_button(
            "Export task (.zip)",
            icon=":material/download:",
            data=export_task_zip(task),
            file_name="few-shot-task.zip",
            mime="application/zip",
            disabled=sum(task.shots) == 0,
            key="export",
        )
    with c2:
        zf = st.file_uploader("Import a task (.zip)", type=["zip"], key=fresh_key("import"))
        if st.button("Import", disabled=zf is None, key="import_button"):

            def _import() -> None:
                replace_task(import_task_zip(zf.getvalue(), zf.name), [])
                flash("success", f"Imported '{plain(zf.name)}': {ss.task.n_way} classes.")

            guarded(_import, f"Importing {zf.name}")
            reset_inputs()
            st.rerun()

st.subheader("Your task")
st.caption("Thumbnails show what the model sees: the 28x28 input after preprocessing.")
for i in range(task.n_way):
    with st.container(border=True):
        head, count, remove = st.columns([4, 2, 1])
        name_key = f"name-{i}-{ss.nonce}"
        head.text_input(
            "Class name", task.class_names[i], key=name_key, max_chars=100, on_change=rename_class, args=(i, name_key)
        )
        count.metric("examples", f"{len(task.examples[i])} / {MAX_EXAMPLES_PER_CLASS}")
        if remove.button("Remove class", key=f"rmclass-{i}", disabled=task.n_way <= 2):
            forget_class(i)
            reset_inputs()
            st.rerun()
        cols = st.columns(MAX_EXAMPLES_PER_CLASS)
        for j, img in enumerate(task.examples[i]):
            with cols[j % len(cols)]:  # the task's own limit keeps this one row; a longer list wraps
                st.image(thumbnail(img), width=56)
                if st.button("✕", key=f"rm-{i}-{j}", help="remove this example"):
                    del task.examples[i][j]
                    st.rerun()
if st.button("Add a class", icon=":material/add:", key="add_class"):
    guarded(task.add_class, "Adding a class")
    st.rerun()

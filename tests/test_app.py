"""AppTest tests of every page: build a task through the widgets, adapt, predict, bad input."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from playground.interactive.task_io import UserTask, export_task_zip

APP = "../app.py"


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def glyph(kind: int, jitter: int = 0) -> bytes:
    """Dark strokes on white, like a scanned drawing: a vertical bar, a cross, or a ring."""
    img = np.full((120, 120), 255, np.uint8)
    o = 10 + jitter
    if kind == 0:
        img[20:100, 50 + o // 4 : 62 + o // 4] = 0
    elif kind == 1:
        img[55:67, 20:100] = 0
        img[20:100, 55:67] = 0
    else:
        yy, xx = np.mgrid[:120, :120]
        r = np.hypot(yy - 60, xx - 60)
        img[(r > 28) & (r < 40)] = 0
    return png_bytes(img)


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (9000, 9000), 1).save(buf, "PNG")  # 81 megapixels in a few kilobytes
    return buf.getvalue()


def _animated() -> bytes:
    buf = io.BytesIO()
    frames = [Image.fromarray(np.full((32, 32), v, np.uint8)) for v in (0, 255)]
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


BOMB, ANIMATED = _bomb(), _animated()


def widget(elements, key_prefix: str):
    """The one widget whose key starts with ``key_prefix`` (keys carry a suffix that changes)."""
    (found,) = [w for w in elements if (w.key or "").startswith(key_prefix)]
    return found


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120).run()


def task_of(at: AppTest) -> UserTask:
    return at.session_state["task"]


def upload(at: AppTest, target: int, files: list[tuple[str, bytes, str]]) -> AppTest:
    nonce = at.session_state["nonce"]
    widget(at.selectbox, "upload_target-").set_value(target)
    at.file_uploader(key=f"uploader-{nonce}").set_value(files)
    at.run()
    at.button(key="add_uploads").click()
    return at.run()


def seen(markdown: str) -> str:
    """What a person reads in a markdown message: names arrive escaped (see playground.ui.display.plain)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace("\u2060", "")


def summary_table(at: AppTest):
    """Adapt and predict's table of accuracy, times and status per model."""
    return next(d.value for d in at.dataframe if "status" in d.value.columns)


def prediction_table(at: AppTest):
    """Adapt and predict's grid: a row per query, each model's pick in the column named by the model."""
    return next(d.value for d in at.dataframe if "true class" in d.value.columns)


def messages(at: AppTest) -> str:
    return " ".join(seen(e.value) for e in list(at.error) + list(at.warning) + list(at.success))


def test_first_screen_shows_before_it_tells():
    """No warning before the person has done anything; the not-ready list comes once they start."""
    at = new_app()
    assert not at.exception
    assert at.title[0].value.endswith("Build a task")
    assert not at.warning and not at.error
    upload(at, 0, [("bar.png", glyph(0), "image/png")])
    assert "has no examples" in messages(at)


@pytest.mark.omniglot
def test_try_a_sample_task_lands_on_the_predictions(omniglot):
    at = new_app()
    (button,) = [b for b in at.button if b.key == "try_sample"]
    assert button.proto.type == "primary"
    button.click().run()
    assert not at.exception
    assert at.title[0].value.endswith("Adapt and predict")
    task, results = task_of(at), at.session_state["results"]
    assert task.n_way == 5 and task.shots == [1] * 5 and len(at.session_state["queries"]) == 10
    assert results is not None and all(r.error is None for r in results["results"])
    accuracy = [r.accuracy for r in results["results"] if r.algorithm == "protonet"]
    assert accuracy and accuracy[0] >= 0.5  # ProtoNet reaches 98% here: far above chance (20%)


def test_upload_images_builds_the_task():
    at = new_app()
    upload(at, 0, [("bar1.png", glyph(0), "image/png"), ("bar2.png", glyph(0, 8), "image/png")])
    upload(at, 1, [("cross.png", glyph(1), "image/png")])
    upload(at, 2, [("ring.png", glyph(2), "image/png")])
    assert not at.exception
    assert task_of(at).shots == [2, 1, 1]
    assert "Task ready" in messages(at)


@pytest.mark.parametrize(
    "name, data, expected",
    [
        ("notes.png", b"this is not an image at all", "notes.png"),
        ("blank.png", png_bytes(np.full((64, 64), 255, np.uint8)), "blank"),
        ("black.png", png_bytes(np.zeros((64, 64), np.uint8)), "dark"),
        ("cut.png", glyph(1)[:60], "cut.png"),
        ("bomb.png", BOMB, "bomb.png"),
        ("anim.png", ANIMATED, "animation"),  # a GIF renamed .png
    ],
)
def test_bad_upload_gives_a_message_and_keeps_the_task(name, data, expected):
    at = new_app()
    upload(at, 0, [("bar.png", glyph(0), "image/png")])
    assert task_of(at).shots == [1, 0, 0]
    upload(at, 1, [(name, data, "image/png")])
    assert not at.exception
    assert expected in " ".join(seen(e.value) for e in at.error)
    assert task_of(at).shots == [1, 0, 0]


def test_sixth_example_is_refused_with_the_limit():
    at = new_app()
    upload(at, 0, [(f"b{i}.png", glyph(0, i), "image/png") for i in range(6)])
    assert task_of(at).shots[0] == 5
    assert "5 examples" in " ".join(seen(e.value) for e in at.error)


def test_import_round_trip_and_hostile_zip_keeps_the_task():
    at = new_app()
    upload(at, 0, [("bar.png", glyph(0), "image/png")])
    upload(at, 1, [("cross.png", glyph(1), "image/png"), ("cross2.png", glyph(1, 5), "image/png")])
    original = task_of(at)
    data = export_task_zip(original)
    # A hostile zip: path traversal. The task must survive it.
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.txt", "x")
        zf.writestr("task.json", "{}")
    nonce = at.session_state["nonce"]
    at.file_uploader(key=f"import-{nonce}").set_value(("evil.zip", buf.getvalue(), "application/zip"))
    at.run()
    at.button(key="import_button").click().run()
    assert not at.exception
    assert at.error and "evil.zip" in seen(at.error[0].value)
    assert task_of(at).shots == [1, 2, 0]
    # The export of this task imports back to the same task.
    fresh = new_app()
    nonce = fresh.session_state["nonce"]
    fresh.file_uploader(key=f"import-{nonce}").set_value(("task.zip", data, "application/zip"))
    fresh.run()
    fresh.button(key="import_button").click().run()
    back = task_of(fresh)
    assert back.class_names == original.class_names
    assert all(np.array_equal(a, b) for ca, cb in zip(back.examples, original.examples) for a, b in zip(ca, cb))


def test_sessions_do_not_share_tasks():
    a, b = new_app(), new_app()
    upload(a, 0, [("bar.png", glyph(0), "image/png")])
    assert task_of(a).shots == [1, 0, 0]
    assert task_of(b.run()).shots == [0, 0, 0]


def test_predict_page_asks_to_finish_an_incomplete_task():
    at = new_app()
    at.switch_page("pages/adapt_predict.py").run()
    assert not at.exception
    assert "Finish the task first" in at.warning[0].value


def test_uploaded_task_and_query_adapt_and_predict():
    at = new_app()
    upload(at, 0, [("bar.png", glyph(0), "image/png")])
    upload(at, 1, [("cross.png", glyph(1), "image/png")])
    upload(at, 2, [("ring.png", glyph(2), "image/png")])
    at.switch_page("pages/adapt_predict.py").run()
    nonce = at.session_state["nonce"]
    at.file_uploader(key=f"q_upload-{nonce}").set_value(("q.png", glyph(2, 6), "image/png"))
    widget(at.selectbox, "up_label-").set_value(2)
    at.run()
    at.button(key="add_q_uploads").click().run()
    assert len(at.session_state["queries"]) == 1
    at.button(key="adapt").click().run()
    assert not at.exception
    results = at.session_state["results"]["results"]
    assert {r.algorithm for r in results} >= {"protonet", "maml"}
    for r in results:
        assert r.error is None and r.proba.shape == (1, 3)
        assert np.allclose(r.proba.sum(-1), 1.0, atol=1e-4)
    table = summary_table(at)
    assert list(table["model"]) == [r.model for r in results]
    grid = prediction_table(at)
    assert list(grid["#"]) == ["Q1"] and all(grid[r.model][0].startswith("✓ C · ") for r in results), grid
    charts = at.get("plotly_chart")
    assert len(charts) >= len(results)  # every class's probability for one query per model, and MAML's curve


@pytest.mark.omniglot
def test_sampled_task_adapts_and_scores_far_above_chance(omniglot):
    at = new_app()
    at.number_input(key="sample_n").set_value(5)
    at.number_input(key="sample_k").set_value(1)
    at.number_input(key="sample_q").set_value(4)
    at.button(key="sample_button").click().run()
    assert task_of(at).n_way == 5 and len(at.session_state["queries"]) == 20
    at.switch_page("pages/adapt_predict.py").run()
    at.button(key="adapt").click().run()
    assert not at.exception
    for r in at.session_state["results"]["results"]:
        assert r.accuracy is not None
        if r.algorithm in ("protonet", "maml"):  # the meta-learned models; chance is 20%
            assert r.accuracy >= 0.5, (r.model, r.accuracy)
    assert "accuracy" in summary_table(at).columns


def test_extreme_inner_lr_keeps_the_shared_model_unchanged():
    import torch

    at = new_app()
    upload(at, 0, [("bar.png", glyph(0), "image/png")])
    upload(at, 1, [("cross.png", glyph(1), "image/png")])
    upload(at, 2, [("ring.png", glyph(2), "image/png")])
    at.switch_page("pages/adapt_predict.py").run()
    nonce = at.session_state["nonce"]
    at.file_uploader(key=f"q_upload-{nonce}").set_value(("q.png", glyph(2, 6), "image/png"))
    at.run()
    at.button(key="add_q_uploads").click().run()
    from playground.ui.resources import load_models  # the same cached models the app uses

    maml = next(m for _, m in load_models("cpu").values() if m.name == "maml")
    before = {k: v.clone() for k, v in maml.state_dict().items()}
    lr = at.number_input(key="opt-maml_lake-inner_lr-3x1")  # keys carry the task size
    lr.set_value(lr.max)  # the top of the allowed range: ten times the meta-trained rate
    at.slider(key="opt-maml_lake-n_steps-3x1").set_value(25)
    at.run()
    at.button(key="adapt").click().run()
    assert not at.exception
    assert at.session_state["results"] is not None
    assert all(torch.equal(before[k], v) for k, v in maml.state_dict().items())


def test_model_choice_and_per_model_settings_reach_the_predictions():
    at = new_app()
    at.multiselect(key="model_choice_widget").set_value(["maml_lake", "pixel_nn"]).run()
    upload(at, 0, [("bar.png", glyph(0), "image/png")])
    upload(at, 1, [("cross.png", glyph(1), "image/png")])
    upload(at, 2, [("ring.png", glyph(2), "image/png")])
    at.switch_page("pages/adapt_predict.py").run()
    nonce = at.session_state["nonce"]
    at.file_uploader(key=f"q_upload-{nonce}").set_value(("q.png", glyph(2, 6), "image/png"))
    at.run()
    at.button(key="add_q_uploads").click().run()
    assert not at.exception
    # Only gradient-based models get test-time settings; ProtoNet, now unchosen, is not run.
    assert at.slider(key="opt-maml_lake-n_steps-3x1").value == card_setting("maml_lake", 5, 1)["n_steps"]
    assert not [w for w in at.slider if (w.key or "").startswith("opt-pixel_nn")]
    at.slider(key="opt-maml_lake-n_steps-3x1").set_value(7)
    at.button(key="adapt").click().run()
    assert not at.exception
    results = {r.model: r for r in at.session_state["results"]["results"]}
    assert set(results) == {"maml_lake", "pixel_nn"}
    assert len(results["maml_lake"].trace) == 8  # the loss before each of 7 steps, and after the last
    # Choosing no model at all says what to do instead of failing.
    at.session_state["model_choice"] = []
    at.run()
    assert not at.exception and "Choose at least one model" in " ".join(w.value for w in at.warning)


def test_settings_survive_a_visit_to_another_page():
    """Streamlit drops a widget's value when its page is left; the user's choices must come back with them."""
    at = new_app()
    at.multiselect(key="model_choice_widget").set_value(["maml_lake"]).run()
    at.slider(key="stroke_width").set_value(9).run()
    for cls, kind in enumerate((0, 1, 2)):
        upload(at, cls, [(f"g{kind}.png", glyph(kind), "image/png")])
    widget(at.selectbox, "upload_target-").set_value(2).run()
    at.switch_page("pages/adapt_predict.py").run()
    at.file_uploader(key=f"q_upload-{at.session_state['nonce']}").set_value(("q.png", glyph(2, 6), "image/png"))
    at.run()
    at.button(key="add_q_uploads").click().run()
    at.slider(key="opt-maml_lake-n_steps-3x1").set_value(7)
    at.slider(key="q_stroke").set_value(20)
    widget(at.selectbox, "q_label-").set_value(1)
    at.run()
    at.switch_page("pages/sinusoid.py").run()
    at.slider(key="sine_steps").set_value(33)
    at.number_input(key="sine_seed").set_value(7).run()
    at.switch_page("pages/build_task.py").run()
    assert not at.exception
    assert at.slider(key="stroke_width").value == 9
    assert widget(at.selectbox, "upload_target-").value == 2
    at.switch_page("pages/adapt_predict.py").run()
    assert not at.exception
    assert at.slider(key="opt-maml_lake-n_steps-3x1").value == 7
    assert at.slider(key="q_stroke").value == 20
    assert widget(at.selectbox, "q_label-").value == 1
    at.switch_page("pages/sinusoid.py").run()
    assert at.slider(key="sine_steps").value == 33 and at.number_input(key="sine_seed").value == 7
    # A task of another size starts from the card's steps again (those of 5-way 1-shot, the nearest to 4-way).
    at.switch_page("pages/build_task.py").run()
    at.button(key="add_class").click().run()
    upload(at, 3, [("g3.png", glyph(1, 8), "image/png")])
    assert task_of(at).n_way == 4 and not task_of(at).problems()
    at.switch_page("pages/adapt_predict.py").run()
    assert not at.exception
    assert at.slider(key="opt-maml_lake-n_steps-4x1").value == card_setting("maml_lake", 5, 1)["n_steps"]
    # The class names changed, so the query's class choice starts afresh: a stale option never lingers.
    assert widget(at.selectbox, "q_label-").value == "unknown"


def card_setting(name: str, n_way: int, k_shot: int) -> dict[str, float]:
    """The inner steps and rate a shipped card's n_way/k_shot figure was measured with (the model's own where
    the card names none)."""
    from playground.zoo.checkpoints import read_card
    from playground.zoo.shipped import CHECKPOINT_DIR

    card = read_card(CHECKPOINT_DIR / f"{name}.pt")
    cell = card.result(n_way, k_shot)
    steps = card.config["test_inner_steps"] if cell.inner_steps is None else cell.inner_steps
    return {"n_steps": steps, "inner_lr": card.config["inner_lr"] if cell.inner_lr is None else cell.inner_lr}


@pytest.mark.omniglot
def test_inner_steps_and_rate_start_from_the_card_for_the_task_size(omniglot):
    """MAML's card chose other steps or step sizes at 20-way 1-shot than at 5-way: each task starts at its size's,
    and a 20-way task adapts well with them."""
    at = new_app()
    at.multiselect(key="model_choice_widget").set_value(["maml_lake"]).run()
    settings = {n: card_setting("maml_lake", n, 1) for n in (20, 5)}
    assert settings[20] != settings[5]  # the premise, from the shipped card
    for n in (20, 5):
        expected, expected_lr = settings[n]["n_steps"], settings[n]["inner_lr"]
        at.switch_page("pages/build_task.py").run()
        at.number_input(key="sample_n").set_value(n)
        at.number_input(key="sample_k").set_value(1)
        at.number_input(key="sample_q").set_value(1)
        at.button(key="sample_button").click().run()
        assert task_of(at).n_way == n
        at.switch_page("pages/adapt_predict.py").run()
        assert not at.exception
        assert at.slider(key=f"opt-maml_lake-n_steps-{n}x1").value == expected
        assert at.number_input(key=f"opt-maml_lake-inner_lr-{n}x1").value == pytest.approx(expected_lr)
        if n == 20:
            at.button(key="adapt").click().run()
            (result,) = at.session_state["results"]["results"]
            assert len(result.trace) == expected + 1
            assert result.accuracy >= 0.5, result.accuracy  # chance is 5%


def test_a_rename_shows_at_once_and_the_picked_class_stays_picked():
    """Renaming used to lag one run, and the stale pick then switched the target to another class."""
    at = new_app()
    upload(at, 0, [("bar.png", glyph(0), "image/png")])
    widget(at.selectbox, "upload_target-").set_value(2)
    widget(at.selectbox, "draw_target-").set_value(1)
    at.run()
    nonce = at.session_state["nonce"]
    at.text_input(key=f"name-2-{nonce}").input("Cs").run()
    assert not at.exception
    picker = widget(at.selectbox, "upload_target-")
    assert picker.options == ["A", "B", "Cs"] and picker.value == 2
    assert widget(at.selectbox, "draw_target-").value == 1
    assert "class 'Cs' has no examples" in messages(at) and "'C'" not in messages(at)
    at.file_uploader(key=f"uploader-{at.session_state['nonce']}").set_value(("ring.png", glyph(2), "image/png"))
    at.run()
    at.button(key="add_uploads").click().run()
    assert task_of(at).shots == [1, 0, 1]  # the ring went where it was sent
    assert "Added 1 image(s) to 'Cs'" in messages(at)


def test_removing_a_class_keeps_the_picked_class():
    at = new_app()
    widget(at.selectbox, "upload_target-").set_value(2)
    at.run()
    at.button(key="rmclass-0").click().run()
    picker = widget(at.selectbox, "upload_target-")
    assert picker.options == ["B", "C"] and picker.value == 1


@pytest.mark.omniglot
def test_surprise_me_and_import_can_be_undone(omniglot):
    at = new_app()
    upload(at, 0, [("bar.png", glyph(0), "image/png")])
    upload(at, 1, [("cross.png", glyph(1), "image/png")])
    mine = task_of(at)
    assert not [b for b in at.button if b.key == "undo_replace"]  # nothing to undo yet
    at.button(key="sample_button").click().run()
    assert task_of(at).n_way == 5 and not at.exception
    (undo,) = [b for b in at.button if b.key == "undo_replace"]
    assert "2 examples" in undo.label
    undo.click().run()
    assert task_of(at) is mine and task_of(at).shots == [1, 1, 0]
    assert not [b for b in at.button if b.key == "undo_replace"]
    nonce = at.session_state["nonce"]
    at.file_uploader(key=f"import-{nonce}").set_value(
        ("t.zip", export_task_zip(UserTask(["x", "y"], [[], []])), "application/zip")
    )
    at.run()
    at.button(key="import_button").click().run()
    assert task_of(at).class_names == ["x", "y"]
    at.button(key="undo_replace").click().run()
    assert task_of(at) is mine

"""AppTest tests of the explorer and compare pages: each figure is drawn from the task, with what it should hold."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_app import glyph, new_app, upload

from playground.ui.display import short_names
from playground.zoo.shipped import shipped_models


def plain(obj):
    """Plotly's JSON with its binary-encoded arrays ({"dtype", "bdata", "shape"}) turned into lists."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            arr = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=obj["dtype"])
            shape = obj.get("shape")
            if shape:
                arr = arr.reshape([int(n) for n in str(shape).split(",")])
            return arr.tolist()
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


def charts(at: AppTest) -> dict[str, dict]:
    """The page's plotly figures by widget key (the figure JSON Streamlit sends to the browser)."""
    out = {}
    for c in at.get("plotly_chart"):
        key = next((k for k in ("id", "key") if getattr(c.proto, k, "")), None)
        out[getattr(c.proto, key) if key else str(len(out))] = plain(json.loads(c.proto.spec))
    return out


def chart(at: AppTest, key: str) -> dict:
    found = [fig for k, fig in charts(at).items() if key in k]
    assert found, f"no chart {key!r}; have {list(charts(at))}"
    return found[0]


def sampled(at: AppTest, n: int = 5, k: int = 2, q: int = 2, models: list[str] | None = None) -> AppTest:
    if models is not None:
        at.multiselect(key="model_choice_widget").set_value(models).run()
    at.number_input(key="sample_n").set_value(n)
    at.number_input(key="sample_k").set_value(k)
    at.number_input(key="sample_q").set_value(q)
    at.button(key="sample_button").click().run()
    return at


def drawn_task(k: int = 1, models: list[str] | None = None) -> AppTest:
    at = new_app()
    if models is not None:  # before the uploads: AppTest drops the sidebar from its tree after st.rerun
        at.multiselect(key="model_choice_widget").set_value(models).run()
    for c in range(3):
        upload(at, c, [(f"g{c}{j}.png", glyph(c, 4 * j), "image/png") for j in range(k)])
    return at


def text(at: AppTest) -> str:
    return " ".join(e.value for e in [*at.error, *at.warning, *at.info, *at.caption, *at.markdown])


@pytest.mark.parametrize("page", ["pages/explorer.py", "pages/compare.py"])
def test_pages_ask_for_a_finished_task(page):
    at = new_app()
    at.switch_page(page).run()
    assert not at.exception
    assert "Finish the task first" in at.warning[0].value


@pytest.mark.omniglot
def test_explorer_shows_embedding_steps_and_decisions(omniglot):
    at = sampled(new_app(), models=["protonet_lake", "maml_lake", "matching_lake"])
    at.switch_page("pages/explorer.py").run()
    assert not at.exception, at.exception
    # ProtoNet (the first chosen): t-SNE of 10 support + 10 queries + 5 prototypes.
    emb = chart(at, "explore_embedding")
    points = [t for t in emb["data"] if t.get("mode") == "markers" and t.get("x") and t["x"][0] is not None]
    assert sum(len(t["x"]) for t in points) == 25
    assert {t["marker"]["symbol"] for t in points} == {"circle", "diamond", "star"}
    assert "t-SNE" in emb["layout"]["title"]["text"]
    assert any(t.get("name") == "query → nearest prototype" for t in emb["data"])
    assert "has no inner loop" in text(at)  # ProtoNet: no steps to watch
    # Its decisions: probabilities and distances, 10 queries x 5 classes, and a confusion matrix.
    probs = chart(at, "explore_matrix-class probabilities")
    assert len(probs["data"][0]["z"]) == 10 and len(probs["data"][0]["z"][0]) == 5
    assert len(probs["layout"]["images"]) == 10 + 5  # thumbnails: the queries and one per class
    chart(at, "explore_matrix-squared distance")
    confusion = chart(at, "explore_confusion")
    assert sum(map(sum, confusion["data"][0]["z"])) == 10
    # PCA and distractors change the picture and the note.
    at.radio(key="explore_method").set_value("pca")
    at.slider(key="explore_distractors").set_value(10).run()
    emb = chart(at, "explore_embedding")
    assert "PCA" in emb["layout"]["title"]["text"]
    assert any("distractors" in (t.get("name") or "") and len(t["x"]) == 10 for t in emb["data"])
    # MAML: an animation with one frame per inner step.
    at.selectbox(key="explore_model").set_value("maml_lake").run()
    assert not at.exception, at.exception
    steps_slider = next(s for s in at.slider if (s.key or "").startswith("explore_steps-maml_lake-"))
    assert steps_slider.value == 10  # where Adapt and predict stops: maml_lake's card, 5-way 1-shot
    steps_slider.set_value(4).run()
    anim = chart(at, "explore_animation")
    assert [f["name"] for f in anim["frames"]] == ["0", "1", "2", "3", "4"]
    assert len(anim["layout"]["sliders"][0]["steps"]) == 5
    # Each frame fills the points with the class predicted then; the bars give a legend entry per class.
    legend = {t["name"] for t in anim["data"] if t.get("type") == "bar"}
    assert legend == set(short_names(at.session_state.task.class_names))  # as the page labels them
    assert all(f["layout"]["title"]["text"].count("queries right") == 1 for f in anim["frames"])
    steps = chart(at, "explore_query_steps")
    assert len(steps["data"]) == 5 and len(steps["data"][0]["y"]) == 5
    # Matching: the attention matrix is queries x support images, each row a distribution.
    at.selectbox(key="explore_model").set_value("matching_lake").run()
    attention = chart(at, "explore_matrix-attention")["data"][0]["z"]
    assert len(attention) == 10 and len(attention[0]) == 10
    assert all(abs(sum(row) - 1) < 1e-4 for row in attention)


def test_explorer_works_on_a_drawn_one_shot_task_without_queries():
    at = drawn_task(k=1)
    at.switch_page("pages/explorer.py").run()
    assert not at.exception
    assert "No queries yet" in text(at)
    emb = chart(at, "explore_embedding")  # 3 support images and 3 prototypes: t-SNE with a clamped perplexity
    assert "clamped" in emb["layout"]["title"]["text"]
    assert "decisions are made about queries" in text(at)
    # Drawn glyphs take the place of the support markers, and the caption says how to read them.
    at.toggle(key="explore_thumbnails").set_value(True).run()
    emb = chart(at, "explore_embedding")
    assert len(emb["layout"]["images"]) == 3
    support = [t for t in emb["data"] if t.get("marker", {}).get("symbol") == "circle" and t["x"][0] is not None]
    assert support and all(t["marker"]["opacity"] == 0 for t in support)
    assert "Each image is drawn where the model places it" in text(at)


def test_compare_scores_the_task_by_leave_one_out_without_labelled_queries():
    at = drawn_task(k=2, models=["protonet_lake", "pixel_nn"])
    at.switch_page("pages/compare.py").run()
    assert "leave-one-out" in text(at)
    at.button(key="compare_task").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["model"]) == ["protonet_lake", "pixel_nn"]
    assert all(0 <= a <= 1 for a in table["accuracy"]) and all("leave-one-out" in s for s in table["scored on"])
    assert [len(bar["x"]) for bar in chart(at, "compare_task_accuracy")["data"]] == [1, 1]  # a bar per model


def test_compare_with_one_shot_and_no_labels_says_what_is_missing():
    at = drawn_task(k=1)
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert "Nothing to score yet" in text(at)
    assert not [b for b in at.button if b.key == "compare_task"]


@pytest.mark.slow  # two models over 20 benchmark episodes, in the page
@pytest.mark.omniglot
def test_compare_task_benchmark_and_curves(omniglot):
    at = sampled(new_app(), models=["protonet_lake", "maml_lake"])
    at.switch_page("pages/compare.py").run()
    at.button(key="compare_task").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert set(table["model"]) == {"protonet_lake", "maml_lake"}
    assert (table["accuracy"] > 0.5).all()  # meta-learned models on 5-way: chance is 20%
    # The benchmark: same episodes for both, accuracy with CI error bars; 3-way, as the work is not the point.
    at.number_input(key="compare_way").set_value(3)
    at.slider(key="compare_episodes").set_value(20)
    at.button(key="compare_bench").click().run()
    assert not at.exception, at.exception
    bars = chart(at, "compare_bench_chart")["data"]  # one bar per model, each with its error bar
    assert len(bars) == 2 and all(50 < b["x"][0] <= 100 and len(b["error_x"]["array"]) == 1 for b in bars)
    bench = at.dataframe[1].value
    assert list(bench["episodes"]) == [20, 20]
    # Curves: every model against shots, MAML against inner steps.
    at.slider(key="compare_curve_episodes").set_value(10)
    at.slider(key="compare_curve_steps").set_value(2)
    at.button(key="compare_curves").click().run()
    assert not at.exception, at.exception
    shots = chart(at, "compare_shot_curve")["data"]
    assert {t["name"] for t in shots} == {"protonet_lake", "maml_lake"} and all(len(t["y"]) == 5 for t in shots)
    (steps,) = chart(at, "compare_step_curve")["data"]
    assert steps["name"] == "maml_lake" and steps["x"] == [0, 1, 2]


def test_compare_all_shipped_models_button_chooses_every_model():
    at = drawn_task(k=1)
    at.switch_page("pages/compare.py").run()
    at.button(key="compare_all").click().run()
    assert not at.exception, at.exception
    assert sorted(at.session_state["model_choice"]) == sorted(m.name for m in shipped_models())
    assert "Comparing **14** model(s)" in text(at) or len(shipped_models()) != 14


@pytest.mark.omniglot
# 5 shots: the same pages and card lookup as 1 shot, for another card cell, at five times the adaptation.
@pytest.mark.parametrize("shots", [1, pytest.param(5, marks=pytest.mark.slow)])
def test_the_pages_agree_with_each_other_and_with_the_card(omniglot, shots):
    """One task, no setting touched: Adapt and predict, Compare and Explore adapt as the card's figure did."""
    import torch

    from playground.runtime.threads import SERVING_THREADS
    from playground.zoo.checkpoints import load_learner
    from playground.zoo.shipped import CHECKPOINT_DIR

    models = ["maml_lake", "metasgd_lake"]
    at = sampled(new_app(), n=5, k=shots, q=2, models=models)
    at.switch_page("pages/adapt_predict.py").run()
    at.button(key="adapt").click().run()
    assert not at.exception, at.exception
    adapted = {r.model: r for r in at.session_state["results"]["results"]}
    task = at.session_state["task"]
    support_x, support_y, _ = task.support()
    from playground.interactive.imaging import to_tensor

    query_x = to_tensor([q.image for q in at.session_state["queries"]])
    torch.set_num_threads(SERVING_THREADS)  # as the app computes: many inner steps amplify a thread count's rounding
    for name in models:  # the library with the card's settings spelled out gives the same answer
        learner = load_learner(CHECKPOINT_DIR / f"{name}.pt")
        card = learner.test_time.nearest(5, shots)
        assert card, f"{name}'s card records settings for 5-way {shots}-shot"
        expected = learner.adapt(support_x, support_y, **card).predict_proba(query_x)
        assert torch.allclose(torch.from_numpy(adapted[name].proba), expected, atol=1e-5)
        assert len(adapted[name].trace) == card["n_steps"] + 1

    at.switch_page("pages/compare.py").run()
    at.button(key="compare_task").click().run()
    assert not at.exception, at.exception
    rows = {r["model"]: r for r in at.session_state["compare_task_result"]["rows"]}
    for name in models:
        assert rows[name]["accuracy"] == pytest.approx(adapted[name].accuracy)

    at.switch_page("pages/explorer.py").run()
    for name in models:
        at.selectbox(key="explore_model").set_value(name).run()
        assert not at.exception, at.exception
        curve = chart(at, "explore_curve")
        losses = curve["data"][0]["y"]
        assert losses == pytest.approx([t.loss for t in adapted[name].trace], rel=1e-4, abs=1e-5)

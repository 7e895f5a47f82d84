"""Beat the human: the scorer, the models' per-item picks, the figure, and the page driven through AppTest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from playground.evaluation.few_shot import confidence_interval_95
from playground.figures.lake import lake_error_chart
from playground.lake.game import (
    HumanAttempt,
    LakeMeasurement,
    LakeScore,
    RunPicks,
    best_card_score,
    card_lake_settings,
    card_score,
    compare,
    error_percent,
    item_image_columns,
    item_rows,
    lake_runs_available,
    lake_runs_file,
    measure_model,
    missing_runs_message,
    overview_scores,
    pick_column,
    run_glyph_uris,
    run_images,
    run_picks,
)
from playground.lake.runs import HUMAN_ERROR, evaluate_lake_runs

ROOT = Path(__file__).resolve().parents[1]
PAGE = "../pages/beat_human.py"
LAKE_SKIP = f"Lake's runs not found: {missing_runs_message()}"


@pytest.fixture(scope="module")
def runs():
    if not lake_runs_available():
        pytest.skip(LAKE_SKIP)
    from playground.lake.runs import load_lake_runs

    return load_lake_runs()


# -- the scorer ------------------------------------------------------------------------


def test_attempt_counts_right_wrong_and_unanswered():
    truth = [19 - i for i in range(20)]
    picks: list[int | None] = [None] * 20
    for i in range(10):
        picks[i] = truth[i]  # 10 right
    for i in range(10, 15):
        picks[i] = (truth[i] + 1) % 20  # 5 wrong; 5 left unanswered
    a = HumanAttempt(picks, truth)
    assert (a.answered, a.correct, a.errors, a.unanswered) == (15, 10, 5, 5)
    assert a.error_rate == pytest.approx(5 / 15)
    assert not a.complete
    assert a.right == [True] * 10 + [False] * 5 + [None] * 5
    assert a.score().error == pytest.approx(5 / 15) and a.score().source == "you"
    empty = HumanAttempt([None] * 20, truth)
    assert empty.error_rate is None and empty.errors == 0 and empty.answered == 0
    full = HumanAttempt(list(truth), truth)
    assert full.complete and full.error_rate == 0.0


@pytest.mark.parametrize("picks", [[0] * 19, [20] + [None] * 19, [-1] + [None] * 19, ["3"] + [None] * 19])
def test_attempt_refuses_picks_that_are_not_training_glyphs(picks):
    with pytest.raises(ValueError):
        HumanAttempt(picks, list(range(20)))


def test_comparison_counts_who_was_right_on_the_answered_items():
    truth = [0, 1, 2, 3, 4]
    you = HumanAttempt([0, 1, 4, 0, None], truth)  # right, right, wrong, wrong, unanswered
    model = RunPicks([0, 2, 2, 0, 4], [0.9, 0.5, 0.6, 0.3, 0.8], truth)  # right, wrong, right, wrong, right
    (c,) = compare(you, {"m": model})
    assert (c.both_right, c.only_you_right, c.only_model_right, c.both_wrong) == (1, 1, 1, 1)
    assert c.run_error == pytest.approx(2 / 5)  # on all five items
    assert c.error_on_answered == pytest.approx(2 / 4)  # on the four the person answered
    assert c.agreement == pytest.approx(2 / 4)  # same glyph on items 1 and 4
    assert c.row()["agrees with you (%)"] == 50.0
    nothing = compare(HumanAttempt([None] * 5, truth), {"m": model})[0]
    assert nothing.agreement is None and nothing.error_on_answered is None
    with pytest.raises(ValueError, match="another run"):
        compare(you, {"m": RunPicks([0] * 5, [1.0] * 5, [4, 3, 2, 1, 0])})


def test_item_rows_number_from_one_and_mark_each_pick():
    truth = [0, 1, 2]
    rows = item_rows(HumanAttempt([0, 2, None], truth), {"m": RunPicks([1, 1, 2], [0.51, 0.9, 0.994], truth)})
    assert [r["item"] for r in rows] == [1, 2, 3]
    assert [r["answer"] for r in rows] == [1, 2, 3]
    assert [r["you"] for r in rows] == ["1 ✅", "3 ❌", "—"]
    assert [r["m"] for r in rows] == ["2 ❌ (51%)", "2 ✅ (90%)", "3 ✅ (99%)"]


def test_item_rows_show_the_glyphs_beside_each_pick():
    truth = [0, 1, 2]
    train, test = ["train0", "train1", "train2"], ["test0", "test1", "test2"]
    models = {"m": RunPicks([1, 1, 2], [0.51, 0.9, 0.994], truth)}
    rows = item_rows(HumanAttempt([0, 2, None], truth), models, (train, test))
    assert item_image_columns(["m"]) == ["drawing", "right glyph", "your pick", "m's pick"]
    # Each picture sits just before its number or mark, so a row reads drawing, key, then each player.
    assert list(rows[0]) == ["item", "drawing", "right glyph", "answer", "your pick", "you", "m's pick", "m"]
    assert [r["drawing"] for r in rows] == test
    assert [r["right glyph"] for r in rows] == train
    assert [r[pick_column("you")] for r in rows] == ["train0", "train2", None]  # none where unanswered
    assert [r[pick_column("m")] for r in rows] == ["train1", "train1", "train2"]
    assert [r["you"] for r in rows] == ["1 ✅", "3 ❌", "—"]  # the marks are unchanged


def test_run_glyph_uris_are_the_runs_glyphs_as_png(runs):
    import base64
    import io

    from PIL import Image

    train, test = run_glyph_uris(runs[0])
    train_imgs, test_imgs = run_images(runs[0])
    assert len(train) == len(test) == 20
    for uri, img in ((train[3], train_imgs[3]), (test[7], test_imgs[7])):
        assert uri.startswith("data:image/png;base64,")
        png = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert np.array_equal(np.asarray(png), 255 - img)  # dark ink on white, as a person draws


# -- the overview ----------------------------------------------------------------------


def test_card_scores_and_measurements_make_the_overview():
    run_errors = [0.1, 0.05, 0.2, 0.0]
    card = {"lake_runs": {"error": 0.0875, "run_errors": run_errors, "human_error": HUMAN_ERROR}}
    s = card_score("a", card)
    assert (s.error, s.source, s.runs) == (0.0875, "model card", 4)
    assert s.ci95 == pytest.approx(confidence_interval_95(run_errors))
    assert s.times_people == pytest.approx(0.0875 / HUMAN_ERROR)
    assert card_score("b", {"algorithm": "x"}).error is None
    assert card_score("c", None).source == "not measured"

    truth = list(range(20))
    live = LakeMeasurement("b", [RunPicks(truth, [1.0] * 20, truth), RunPicks([1] * 20, [1.0] * 20, truth)], "cpu", 0)
    scores = overview_scores({"a": card, "b": {"lake_runs": {"error": 0.5}}, "c": None}, {"b": live})
    assert [x.name for x in scores] == ["a", "b", "c"]  # the models' order is kept
    assert scores[1].source == "measured now on cpu" and scores[1].error == pytest.approx((0 + 0.95) / 2)
    assert scores[2].error is None


def test_best_card_score_is_the_lowest_card_error():
    cards = {"a": {"lake_runs": {"error": 0.08}}, "b": None, "c": {"lake_runs": {"error": 0.043}}, "d": {}}
    best = best_card_score(cards)
    assert (best.name, best.error, best.source) == ("c", 0.043, "model card")
    tie = best_card_score({"x": {"lake_runs": {"error": 0.1}}, "y": {"lake_runs": {"error": 0.1}}})
    assert tie.name == "x"
    assert best_card_score({"b": None, "d": {}}) is None and best_card_score({}) is None
    assert best.against_people == "below"
    sides = [LakeScore("m", e, None, "x").against_people for e in (HUMAN_ERROR, 0.05, None)]
    assert sides == ["level with", "above", None]


def test_error_percent_keeps_the_quarter_points_of_lakes_400_drawings():
    assert [error_percent(e) for e in (17 / 400, 0.063, 0.79, 0.0, 0.1025)] == ["4.25", "6.3", "79.0", "0.0", "10.25"]


def test_error_chart_has_a_bar_per_measured_model_and_the_people_line():
    scores = [LakeScore(f"model_{i:02d}_lake", 0.05 + 0.04 * i, 0.02, "model card") for i in range(14)]
    scores.append(LakeScore("never_measured", None, None, "not measured"))
    fig = lake_error_chart(list(reversed(scores)))
    (bars,) = fig.data
    assert len(bars.x) == 14 and "never_measured" not in bars.x
    assert list(bars.y) == sorted(bars.y)  # sorted, lowest error first
    assert bars.y[0] == pytest.approx(5.0) and list(bars.error_y.array) == pytest.approx([2.0] * 14)
    labels = [a for a in fig.layout.annotations if a.name == "bar label"]
    assert [a.text for a in labels[:2]] == ["5.0%", "9.0%"]
    lines = [s for s in fig.layout.shapes if s.y0 == s.y1]
    assert [s.y0 for s in lines] == [pytest.approx(100 * HUMAN_ERROR)]
    assert fig.layout.yaxis.title.text and fig.layout.xaxis.title.text
    assert fig.layout.xaxis.tickangle == -35  # 14 long names stay legible
    assert fig.layout.yaxis.range[1] > max(bars.y)
    # Without intervals no whiskers are drawn.
    assert not lake_error_chart([LakeScore("you", 0.1, None, "you")]).data[0].error_y.visible


def label_px_in_axis_units(fig) -> float:
    """A 20-pixel label's height in % error: the plot's height is the figure's, less its margins and
    at least 60 pixels of x axis (so this errs on the tall side)."""
    m = fig.layout.margin
    return 20 / (fig.layout.height - m.t - m.b - 60) * (fig.layout.yaxis.range[1] - fig.layout.yaxis.range[0])


@pytest.mark.parametrize(
    "scores",
    [
        # The shipped models' card figures: maml_lake's 10.25% once sat on the line, protonet_lake's was hidden.
        [("protonet_lake", 0.0625, 0.02), ("maml_lake", 0.1025, 0.031), ("pixel_nn", 0.79, 0.055)],
        # Just under the line, level with it, just over it, and zero (a person's perfect run).
        [("you", 0.0, None), ("a", 0.0425, 0.004), ("b", HUMAN_ERROR, None), ("c", 0.05, None)],
        [(f"m{i}", 0.01 * i, 0.01) for i in range(14)],
    ],
)
def test_every_bar_value_is_written_above_its_whisker_and_clear_of_the_people_line(scores):
    fig = lake_error_chart([LakeScore(n, e, c, "model card") for n, e, c in scores])
    (bars,) = fig.data
    labels = {a.x: a for a in fig.layout.annotations if a.name == "bar label"}
    assert sorted(labels) == sorted(n for n, _, _ in scores)  # every bar has its value written
    line, height = 100 * HUMAN_ERROR, label_px_in_axis_units(fig)
    whiskers = dict(zip(bars.x, [y + (c or 0) for y, c in zip(bars.y, bars.error_y.array or [0] * len(bars.y))]))
    for name, a in labels.items():
        assert a.text == f"{error_percent(dict((n, e) for n, e, _ in scores)[name])}%"
        assert a.yanchor == "bottom" and a.y >= whiskers[name]  # above the bar and its interval
        assert not (a.y < line < a.y + height), f"the people line runs through {name}'s {a.text}"
        assert a.y + height <= fig.layout.yaxis.range[1]  # and inside the plot


def test_missing_runs_are_reported_with_the_file_and_where_to_get_it(tmp_path):
    assert not lake_runs_available(tmp_path)
    message = missing_runs_message(tmp_path)
    assert (
        str(lake_runs_file(tmp_path)) in message
        and "all_runs.zip" in message
        and "python -m playground download" in message
        and "github" in message
    )
    (tmp_path / "all_runs.zip").write_bytes(b"")
    assert lake_runs_available(tmp_path)


# -- on the real runs ------------------------------------------------------------------


@pytest.mark.omniglot
def test_run_images_are_uint8_with_white_ink(runs):
    train, test = run_images(runs[0])
    assert train.shape == test.shape == (20, 28, 28) and train.dtype == np.uint8
    assert train.max() == 255 and np.median(train) == 0  # ink 255 on a 0 background
    assert np.array_equal(train[3], (runs[0].train_x[3, 0].numpy() * 255).round().astype(np.uint8))


@pytest.mark.omniglot
def test_picks_agree_with_evaluate_lake_runs(runs):
    from playground.algorithms import create_learner
    from playground.zoo.shipped import shipped_models

    pixel = create_learner("pixel-nn")
    calls = []
    m = measure_model("pixel-nn", pixel, runs, progress=lambda done, total: calls.append((done, total)))
    ref = evaluate_lake_runs(pixel, runs)
    assert [r.picks for r in m.runs] == ref.predictions
    assert m.run_errors == pytest.approx(ref.run_errors) and m.error == pytest.approx(ref.error)
    assert m.as_lake_result().predictions == ref.predictions
    assert calls == [(i, 20) for i in range(1, 21)]
    for r in m.runs:
        assert all(1 / 20 <= c <= 1 for c in r.confidence)  # the pick is the most probable glyph
    # A meta-learned model too: the shipped ProtoNet, on a few runs.
    entry = next(e for e in shipped_models() if e.name == "protonet_lake")
    proto = entry.load("cpu", warm=False)
    assert [run_picks(proto, run).picks for run in runs[:3]] == evaluate_lake_runs(proto, runs[:3]).predictions


# -- the page --------------------------------------------------------------------------


def new_page(models: list[str] | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    if models is not None:
        at.session_state["model_choice"] = models
    return at.run()


def table_with(at: AppTest, column: str):
    """The one table on the page with ``column`` (the overview has "source", the item table "drawing")."""
    (table,) = [d for d in at.dataframe if column in d.value.columns]
    return table


def overview(at: AppTest):
    return table_with(at, "source").value.set_index("model")


def element_order(at: AppTest) -> list:
    """Every element of the page's main area, in the order it is drawn."""
    out: list = []

    def walk(node) -> None:
        out.append(node)
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    return out


def position(at: AppTest, key: str) -> int:
    (i,) = [i for i, e in enumerate(element_order(at)) if getattr(e, "key", None) == key]
    return i


def test_page_without_the_runs_shows_the_cards_and_offers_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAYGROUND_DATA", str(tmp_path))
    at = new_page()
    assert not at.exception
    assert "Beat the human" in at.title[0].value
    assert any("Lake's 20 runs" in i.value and str(tmp_path) in i.value for i in at.info)
    assert at.button(key="download").label.startswith("Download Omniglot (about")
    table = overview(at)
    assert table.loc["pixel_nn", "error (%)"] == 79.0  # from its model card: nothing was run
    assert table.loc["protonet_lake", "source"] == "model card"
    assert at.button(key="lake_measure").disabled
    assert len(at.get("plotly_chart")) == 1


def _shipped_lake_errors() -> dict[str, float]:
    from playground.zoo.shipped import shipped_models

    return {m.name: m.card.lake_runs.error for m in shipped_models() if m.card and m.card.lake_runs}


def test_page_names_the_best_shipped_model_when_the_sidebar_leaves_it_out():
    errors = _shipped_lake_errors()
    best = min(errors, key=errors.get)
    at = new_page(["pixel_nn"])
    assert not at.exception
    note = [i.value for i in at.info if "best shipped model" in i.value]
    assert len(note) == 1 and f"**{best}**" in note[0] and f"{error_percent(errors[best])}%" in note[0]
    assert list(overview(at).index) == ["pixel_nn"]
    at.toggle(key="lake_show_best").set_value(True).run()
    assert not at.exception
    table = overview(at)
    assert list(table.index) == ["pixel_nn", best]
    assert table.loc[best, "source"].startswith("model card")
    assert table.loc[best, "error (%)"] == round(100 * errors[best], 2)
    assert best not in at.session_state["model_choice"]  # the sidebar's choice is left as it was
    # Chosen in the sidebar, it needs no note.
    at = new_page([best])
    assert not [i for i in at.info if "best shipped model" in i.value]
    assert not at.toggle


@pytest.mark.omniglot
def test_page_measure_now_replaces_the_card_figures(runs):
    at = new_page(["pixel_nn"])
    at.button(key="lake_measure").click().run()
    assert not at.exception
    measured = at.session_state["lake_measured"]["pixel_nn"]
    assert measured.error == pytest.approx(0.79, abs=0.01)
    row = overview(at).loc["pixel_nn"]
    assert row["source"].startswith("measured now on") and row["error (%)"] == pytest.approx(79.0, abs=1)


@pytest.mark.omniglot
def test_a_person_plays_a_run_and_is_compared_with_the_models(runs):
    at = new_page(["pixel_nn"])
    at.selectbox(key="lake_run_widget").set_value(1).run()
    truth = runs[1].test_y.tolist()
    # Items 1 and 3 right, item 2 wrong; each click moves on to the next item.
    for glyph in (truth[0], (truth[1] + 1) % 20, truth[2]):
        at.button(key=f"lake_pick_{glyph}").click().run()
    assert not at.exception
    assert at.session_state["lake_answers"][1][:4] == [truth[0], (truth[1] + 1) % 20, truth[2], None]
    assert len(at.dataframe) == 1  # no answer key before submitting: only the overview table
    # Answers survive switching to another run and back.
    at.selectbox(key="lake_run_widget").set_value(0).run()
    assert at.session_state["lake_answers"][0] == [None] * 20
    at.selectbox(key="lake_run_widget").set_value(1).run()
    assert at.session_state["lake_answers"][1][:3] == [truth[0], (truth[1] + 1) % 20, truth[2]]
    at.button(key="lake_submit").click().run()
    assert not at.exception
    assert at.metric[0].value == "33.3%"  # 1 wrong of 3 answered
    compare_table, items = table_with(at, "agrees with you (%)").value, table_with(at, "drawing").value
    assert list(items["you"][:4]) == [f"{truth[0] + 1} ✅", f"{(truth[1] + 1) % 20 + 1} ❌", f"{truth[2] + 1} ✅", "—"]
    assert list(items["answer"]) == [t + 1 for t in truth]
    from playground.algorithms import create_learner

    model = evaluate_lake_runs(create_learner("pixel-nn"), runs[1:2]).predictions[0]
    assert [int(v.split()[0]) - 1 for v in items["pixel_nn"]] == model
    agree = sum(a == b for a, b in zip([truth[0], (truth[1] + 1) % 20, truth[2]], model)) / 3
    assert compare_table.loc[0, "agrees with you (%)"] == pytest.approx(round(100 * agree, 1))
    # Trying again clears this run's answers and hides the key again.
    at.button(key="lake_again").click().run()
    assert at.session_state["lake_answers"][1] == [None] * 20 and len(at.dataframe) == 1


@pytest.mark.omniglot
def test_revealing_shows_the_key_without_a_score(runs):
    at = new_page(["pixel_nn"])
    assert at.button(key="lake_submit").disabled  # nothing answered yet
    at.button(key="lake_reveal").click().run()
    assert not at.exception
    assert at.session_state["lake_status"][0] == "revealed"
    assert at.metric[0].value == "—"
    items = table_with(at, "drawing").value
    assert list(items["answer"]) == [t + 1 for t in runs[0].test_y.tolist()] and set(items["you"]) == {"—"}


@pytest.mark.omniglot
def test_the_game_comes_before_the_models_chart(runs):
    at = new_page(["pixel_nn"])
    assert [h.value for h in at.subheader] == ["Your turn", "The models against people"]
    first_glyph, chart = position(at, "lake_pick_0"), position(at, "lake_overview_chart")
    assert position(at, "lake_run_widget") < first_glyph < chart
    # And after submitting, the run's results come first too.
    at.button(key="lake_reveal").click().run()
    assert position(at, "lake_run_chart") < position(at, "lake_overview_chart")
    assert element_order(at).index(table_with(at, "drawing")) < element_order(at).index(table_with(at, "source"))


@pytest.mark.omniglot
def test_each_training_glyph_is_its_own_button_and_a_click_on_it_records_the_answer(runs):
    at = new_page(["pixel_nn"])
    train, _ = run_glyph_uris(runs[0])
    for j in range(20):
        label = at.button(key=f"lake_pick_{j}").label
        # The glyph is the button's face (a Markdown image), named "glyph" and numbered for a screen reader.
        assert label == f"![glyph]({train[j]}) {j + 1}"
    at.button(key="lake_pick_6").click().run()
    assert not at.exception
    assert at.session_state["lake_answers"][0][0] == 6
    assert at.button(key="lake_pick_6").proto.type != "primary"  # on to item 2, which has no pick yet
    at.button(key="lake_prev").click().run()
    assert at.button(key="lake_pick_6").proto.type == "primary"  # back on item 1: its pick is marked


@pytest.mark.omniglot
def test_the_item_table_shows_the_glyphs_as_images(runs):
    import json

    at = new_page(["pixel_nn"])
    at.button(key="lake_pick_2").click().run()
    at.button(key="lake_submit").click().run()
    assert not at.exception
    table = table_with(at, "drawing")
    config = json.loads(table.proto.columns)
    images = item_image_columns(["pixel_nn"])
    assert {c for c, v in config.items() if v.get("type_config", {}).get("type") == "image"} == set(images)
    train, test = run_glyph_uris(runs[0])
    items = table.value
    assert list(items["drawing"]) == test
    assert list(items["right glyph"]) == [train[t] for t in runs[0].test_y.tolist()]
    assert items["your pick"][0] == train[2] and items["your pick"][1:].isna().all()


def test_one_to_one_assignment_uses_each_training_drawing_once():
    import torch

    from playground.lake.runs import one_to_one

    # Each row alone picks class 0; together, 0.3 * 0.9 (row 0 -> 1, row 1 -> 0) beats 0.7 * 0.1.
    p = torch.tensor([[0.7, 0.3], [0.9, 0.1]])
    assert p.argmax(-1).tolist() == [0, 0]
    assert one_to_one(p.log()).tolist() == [1, 0]
    scores = torch.randn(20, 20)
    picks = one_to_one(scores)
    assert sorted(picks.tolist()) == list(range(20))
    # No other permutation scores higher: check against every single swap of two picks.
    total = scores[torch.arange(20), picks].sum()
    for i in range(20):
        for j in range(i + 1, 20):
            swapped = picks.clone()
            swapped[[i, j]] = swapped[[j, i]]
            assert scores[torch.arange(20), swapped].sum() <= total + 1e-6


def test_one_to_one_lake_runs_are_permutations_and_reported_apart(runs, capsys):
    from playground.cli import main
    from playground.zoo.shipped import shipped_models

    proto = next(e for e in shipped_models() if e.name == "protonet_lake").load("cpu", warm=False)
    standard = evaluate_lake_runs(proto, runs)
    joint = evaluate_lake_runs(proto, runs, one_to_one_assignment=True)
    assert all(sorted(p) == list(range(20)) for p in joint.predictions)
    assert joint.error < standard.error  # on these runs, deciding together helps ProtoNet a lot
    assert main(["lake-runs", "assets/checkpoints/protonet_lake.pt", "--one-to-one", "--card"]) == 2
    assert "never written into a card" in capsys.readouterr().err


def test_validation_runs_are_built_like_lakes_from_the_validation_alphabets(omniglot, capsys):
    from playground.cli import main
    from playground.data.protocols import lake_validation_alphabets
    from playground.lake.runs import validation_runs

    runs = validation_runs(omniglot, 10, seed=3)
    allowed = set(lake_validation_alphabets(omniglot))
    names = omniglot.names()
    for run in runs:
        classes = [n.rsplit(" drawing ", 1)[0] for n in run.train_files]
        assert {c.split("/")[0] for c in classes} <= allowed and len(set(classes)) == len(classes) <= 20
        # One person drew all the training images, another all the test images.
        train_d = {n.rsplit(" ", 1)[1] for n in run.train_files}
        test_d = {n.rsplit(" ", 1)[1] for n in run.test_files}
        assert len(train_d) == len(test_d) == 1 and train_d != test_d
        d = int(test_d.pop()) - 1
        for x, y in zip(run.test_x, run.test_y.tolist()):
            want = torch.from_numpy(omniglot.images[names.index(classes[y]), d]).float().div(255)
            assert torch.equal(x[0], want)
        assert sorted(run.test_y.tolist()) == list(range(len(classes)))
    assert [r.name for r in validation_runs(omniglot, 10, seed=3)] == [r.name for r in runs]
    assert main(["lake-runs", "assets/checkpoints/protonet_lake.pt", "--validation", "5", "--card"]) == 2
    assert "never written into a card" in capsys.readouterr().err


@pytest.mark.slow  # several lake-runs measurements
def test_lake_runs_card_records_chosen_steps_and_the_app_measures_with_them(runs, tmp_path, capsys):
    """A Lake figure measured with steps or a step size other than the checkpoint's own says so, and
    "Measure now" repeats it."""
    import shutil

    from playground.cli import main
    from playground.zoo.checkpoints import read_card
    from playground.zoo.shipped import shipped_models

    for suffix in (".pt", ".json"):
        shutil.copy(ROOT / f"assets/checkpoints/maml_lake{suffix}", tmp_path / f"maml_lake{suffix}")
    ckpt = str(tmp_path / "maml_lake.pt")
    # Several step counts or rates are for validation runs only: comparing them on Lake's runs would tune on the test.
    assert main(["lake-runs", ckpt, "--inner-steps", "1", "2"]) == 2
    assert "--validation" in capsys.readouterr().err
    assert main(["lake-runs", ckpt, "--inner-lr", "0.1", "0.2"]) == 2
    assert "several --inner-lr (0.1 0.2)" in capsys.readouterr().err
    assert main(["lake-runs", ckpt, "--validation", "3", "--inner-steps", "1", "2", "--inner-lr", "0.4", "0.1"]) == 0
    out = capsys.readouterr().out
    for setting in ("(1 step of 0.4)", "(2 steps of 0.4)", "(1 step of 0.1)", "(2 steps of 0.1)"):
        assert setting in out
    # A learner without gradient steps has no rate to set: refused, naming the flag.
    assert main(["lake-runs", "assets/checkpoints/protonet_lake.pt", "--inner-lr", "0.1"]) == 2
    assert "--inner-lr" in capsys.readouterr().err
    # An ensemble has one when a member does (its adapt passes it on; members without one ignore it).
    from playground.algorithms import create_learner
    from playground.zoo.checkpoints import save_checkpoint

    members = [{"algorithm": "protonet", "config": {"hidden": 8}}, {"algorithm": "maml", "config": {"hidden": 8}}]
    ensemble = save_checkpoint(tmp_path / "e.pt", create_learner("ensemble", members=members))
    assert main(["lake-runs", str(ensemble), "--validation", "2", "--inner-lr", "0.1", "0.01"]) == 0
    assert "(step size 0.1)" in capsys.readouterr().out

    assert main(["lake-runs", ckpt, "--inner-steps", "1", "--card"]) == 0
    card = read_card(ckpt)
    # the rate left unset is that of the card's own Lake figure, and the card now says so
    assert card_lake_settings(card) == {"n_steps": 1, "inner_lr": 0.1}
    assert card_score("m", card).source == "model card (1 inner step of 0.1)"
    assert card.lake_runs.command == f"python -m playground lake-runs {ckpt} --inner-steps 1 --card"
    maml = next(e for e in shipped_models() if e.name == "maml_lake").load("cpu", warm=False)
    own_steps = maml.test_inner_steps
    assert own_steps != 1
    one = measure_model("maml_lake", maml, runs, card_lake_settings(card))
    assert one.run_errors == pytest.approx(card.lake_runs.run_errors)  # measuring now repeats the card
    assert one.error != pytest.approx(evaluate_lake_runs(maml, runs).error)  # and the steps do matter

    assert main(["lake-runs", ckpt, "--inner-steps", "3", "--inner-lr", "0.04", "--card"]) == 0
    card = read_card(ckpt)
    assert card_lake_settings(card) == {"n_steps": 3, "inner_lr": 0.04}
    assert card_score("m", card).source == "model card (3 inner steps of 0.04)"
    small = measure_model("maml_lake", maml, runs, card_lake_settings(card))
    assert small.run_errors == pytest.approx(card.lake_runs.run_errors)
    assert small.run_errors != evaluate_lake_runs(maml, runs, n_steps=3).run_errors  # the rate does matter
    assert card_lake_settings({"lake_runs": {"error": 0.1}}) == {} and card_lake_settings(None) == {}


@pytest.mark.omniglot
def test_page_adapts_with_the_steps_of_the_cards_lake_figure(runs):
    """maml_lake's card figure was measured with 30 steps, not its own 2: the page measures and picks with 30."""
    from playground.zoo.shipped import shipped_models

    entry = next(e for e in shipped_models() if e.name == "maml_lake")
    settings = card_lake_settings(entry.card)
    maml = entry.load("cpu", warm=False)
    assert settings.get("n_steps") not in (None, maml.test_inner_steps)
    at = new_page(["maml_lake"])
    at.button(key="lake_measure").click().run()
    assert not at.exception
    assert at.session_state["lake_measured"]["maml_lake"].error == pytest.approx(entry.card.lake_runs.error)
    at.button(key="lake_reveal").click().run()
    assert not at.exception
    items = table_with(at, "drawing").value
    assert [int(v.split()[0]) - 1 for v in items["maml_lake"]] == run_picks(maml, runs[0], settings).picks


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.omniglot
def test_in_a_browser_the_game_is_first_and_a_click_on_a_glyph_answers(runs, app_server):
    """Clicking the glyph's picture (not a number beside it) answers the item; the game is above the chart."""
    from browser import browser, open_app, require_chromium, wait_for_text, wait_until_idle

    require_chromium()
    url = app_server
    with browser(1400, 1000) as driver:
        open_app(driver, url)
        driver.find_element("xpath", "//a[contains(normalize-space(.), 'Beat the human')]").click()
        wait_for_text(driver, "0 of 20 answered", timeout=120)
        wait_until_idle(driver)
        heading = driver.find_element("xpath", "//h3[contains(normalize-space(.), 'Your turn')]")
        chart = driver.find_element("css selector", ".st-key-lake_overview_chart")
        assert heading.location["y"] < chart.location["y"]
        button = driver.find_element("css selector", ".st-key-lake_pick_2 button")
        glyph = button.find_element("css selector", "img")
        assert glyph.size["height"] >= 40 and glyph.size["width"] >= 40  # a glyph, not an icon-sized speck
        assert button.accessible_name == "glyph 3"
        glyph.click()
        wait_for_text(driver, "1 of 20 answered")
        wait_until_idle(driver)
        driver.find_element("css selector", ".st-key-lake_prev button").click()
        wait_for_text(driver, "your pick: 3")

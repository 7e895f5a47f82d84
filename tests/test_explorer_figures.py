"""The explorer's figures, built from small hand-made views: what a person sees in each of them."""

from __future__ import annotations

import numpy as np
import pytest

from playground.figures.explorer import WRONG, class_colour, decision_heatmap, embedding_figure, steps_animation
from playground.interactive.explain import AdaptationSteps, EmbeddingView
from playground.ui.display import short_names

NAMES = ["alpha", "beta", "gamma"]
HOSTILE = '<a href="http://127.0.0.1:9/x">click</a>'


def steps_view() -> AdaptationSteps:
    """3 support images and 3 queries (one per class) over two inner steps.

    Before adapting every class is equally likely (MAML's head starts at zero); after one step the
    model is right about everything. Query 2 is confidently wrong at step 0.
    """
    uniform = np.full(3, 1 / 3)
    one_hot = np.eye(3) * 0.97 + 0.01
    query_0 = np.stack([uniform, one_hot[2], one_hot[2]])  # undecided, wrong (2 for 1), right
    return AdaptationSteps(
        steps=[0, 1],
        coords=np.stack([np.arange(12.0).reshape(6, 2), np.arange(12.0).reshape(6, 2) + 0.01]),
        query_proba=np.stack([query_0, one_hot]),
        support_proba=np.stack([np.stack([uniform] * 3), one_hot]),
        support_accuracy=[1 / 3, 1.0],
        kind=["support"] * 3 + ["query"] * 3,
        label=[0, 1, 2, 0, 1, 2],
        images=[np.zeros((28, 28), np.uint8)] * 6,
        note="PCA (one projection for every step)",
    )


def by_name(traces: list, name: str) -> dict:
    (found,) = [t for t in traces if t.name == name]
    return found


def test_adaptation_steps_call_a_tie_no_prediction_and_count_it_not_right():
    view = steps_view()
    assert view.predicted(0) == [None, None, None, None, 2, 2]
    assert view.predicted(1) == [0, 1, 2, 0, 1, 2]
    assert view.wrong(0) == [0, 1, 2, 3, 4]  # the undecided ones are not right yet
    assert view.wrong(1) == []
    assert view.motion() == pytest.approx(0.01 * np.sqrt(2) / 10, rel=1e-2)  # 10: the larger span


def test_step_frames_colour_points_by_current_prediction_and_ring_the_wrong_ones():
    view = steps_view()
    fig = steps_animation(view, NAMES, "maml")
    grey = class_colour(None)
    for frame, colours, rings in (
        (fig.frames[0], [grey, class_colour(2), class_colour(2)], [WRONG, WRONG, "white"]),
        (fig.frames[1], [class_colour(c) for c in range(3)], ["white"] * 3),
    ):
        query = by_name(frame.data, "query")
        assert list(query.marker.color) == colours
        assert list(query.marker.line.color) == rings
        support = by_name(frame.data, "support")
        assert list(support.marker.color) == ([grey] * 3 if frame.name == "0" else colours)
    # Each frame says how many queries are right, so the change is read as well as seen.
    assert "1 of 3 queries right" in fig.frames[0].layout.title.text
    assert "3 of 3 queries right" in fig.frames[1].layout.title.text


def test_step_frames_animate_each_querys_class_probabilities():
    view = steps_view()
    fig = steps_animation(view, NAMES)
    for frame, step in zip(fig.frames, view.steps):
        for c, name in enumerate(NAMES):
            bar = by_name(frame.data, name)
            assert bar.type == "bar" and bar.orientation == "h"
            np.testing.assert_allclose(bar.x, 100 * view.query_proba[step, :, c])
            assert list(bar.y) == ["Q1", "Q2", "Q3"]
    assert fig.layout.barmode == "stack"


def test_step_figure_has_a_legend_entry_per_class_in_its_colour():
    fig = steps_animation(steps_view(), NAMES)
    entries = [t for t in fig.data if t.showlegend is not False and t.name in NAMES]
    assert sorted(t.name for t in entries) == sorted(NAMES)
    assert {t.name: t.marker.color for t in entries} == {n: class_colour(c) for c, n in enumerate(NAMES)}
    named = {t.name for t in fig.data if t.showlegend is not False}
    assert {"support", "query"} <= named and any("wrong" in n for n in named)


def test_step_figure_shows_names_as_text():
    fig = steps_animation(steps_view(), [HOSTILE, "b", "c"])
    spec = fig.to_json()
    assert "<a href" not in spec and "&lt;a href" in spec


def embedding() -> EmbeddingView:
    """2 support images, 2 queries (the second wrong) and 2 prototypes."""
    glyph = np.full((28, 28), 255, np.uint8)
    return EmbeddingView(
        coords=np.array([[0.0, 0.0], [10.0, 0.0], [1.0, 1.0], [9.0, 1.0], [0.5, 0.5], [9.5, 0.5]]),
        kind=["support", "support", "query", "query", "prototype", "prototype"],
        label=[0, 1, 0, 0, 0, 1],
        predicted=[None, None, 0, 1, None, None],
        nearest_prototype=[None, None, 0, 1, None, None],
        images=[glyph] * 4 + [None] * 2,
        class_names=["a", "b"],
        note="PCA",
        space="test space",
        dim=8,
    )


def visible_points(fig) -> set[tuple[float, float]]:
    """Where a marker is drawn: points of marker traces that are not made transparent."""
    out = set()
    for t in fig.data:
        if "markers" not in (t.mode or "") or t.marker.opacity == 0:
            continue
        out |= {(x, y) for x, y in zip(t.x, t.y) if x is not None}
    return out


def test_drawn_glyphs_are_not_covered_by_markers():
    view = embedding()
    imaged = {tuple(view.coords[i]) for i, img in enumerate(view.images) if img is not None}
    plain = embedding_figure(view)
    assert imaged <= visible_points(plain) and not plain.layout.images
    drawn = embedding_figure(view, thumbnails=True)
    assert len(drawn.layout.images) == 4 and all(im.layer == "above" for im in drawn.layout.images)
    assert not imaged & visible_points(drawn)  # the glyph is the point
    assert {tuple(view.coords[i]) for i in view.indices("prototype")} <= visible_points(drawn)
    # The wrong query is still ringed, around its glyph.
    rings = [s for s in drawn.layout.shapes if s.type == "circle" and s.line.color == WRONG]
    assert len(rings) == 1
    ring = rings[0]
    assert ((ring.x0 + ring.x1) / 2, (ring.y0 + ring.y1) / 2) == pytest.approx(tuple(view.coords[3]))
    # Every class keeps a legend entry that shows its colour.
    legend = [t for t in drawn.data if t.showlegend is not False and t.name in ("a", "b")]
    assert sorted(t.name for t in legend) == ["a", "b"]
    assert all(t.marker.opacity != 0 for t in legend)


@pytest.mark.parametrize("unit", ["squared distance", "distance"])
def test_distance_heatmap_darkens_near_like_the_probability_heatmap_darkens_probable(unit):
    probability = decision_heatmap(np.array([[0.9, 0.1]]), ["Q1"], ["a", "b"], "p", "probability").data[0]
    distance = decision_heatmap(np.array([[0.2, 5.0]]), ["Q1"], ["a", "b"], "d", unit).data[0]
    # Same scale; the high end (darkest) is the most probable class, and the nearest one.
    assert distance.colorscale == probability.colorscale
    assert not probability.reversescale and distance.reversescale
    assert "near" in distance.colorbar.title.text


def test_short_names_keep_what_tells_two_long_names_apart():
    names = ["Old Church Slavonic (Cyrillic) 37", "Old Church Slavonic (Cyrillic) 5", "Oriya 20"]
    short = short_names(names)
    assert short[2] == "Oriya 20"
    assert short[0] != short[1] and all(len(s) <= 18 for s in short)
    assert short[0].startswith("Old Church") and short[0].endswith(" 37") and short[1].endswith(" 5")
    # Without spaces, the end of the name is kept too.
    a, b = short_names(["Old_Church_Slavonic_(Cyrillic)_37", "Old_Church_Slavonic_(Cyrillic)_05"])
    assert a.endswith("37") and b.endswith("05") and "…" in a
    # Names that differ only where nothing is shown still come out distinct.
    assert len(set(short_names(["x" * 10 + "a" + "x" * 20, "x" * 10 + "b" + "x" * 20]))) == 2

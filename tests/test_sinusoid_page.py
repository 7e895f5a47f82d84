"""The sine regression page: its figures, the click-to-place helpers, `explore`, and the page through AppTest."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import plotly.io as pio
import pytest
import torch
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

import playground.sinusoid as sinusoid
from playground.figures.sinusoid import (
    PLACEMENT_NAME,
    SUPPORT_NAME,
    TRUE_NAME,
    fit_animation,
    fit_figure,
    log_ticks,
    loss_figure,
    method_label,
    placement_grid,
    point_from_selection,
)
from playground.sinusoid import METHODS, SineTaskSampler, load_regressors, x_grid
from playground.sinusoid.explore import (
    MAX_POINTS,
    card_mse,
    explore,
    lies_on,
    points_to_tensors,
    snap,
)

PAGE = "../pages/sinusoid.py"
SAMPLED, PLACED = "Sampled from a sine task", "Placed by clicking"
OWN_LR, ONE_LR = "Each method's own", "One for every method"


@pytest.fixture(scope="module")
def regressors():
    return load_regressors(sinusoid.DEFAULT_PATH)


def task_of(seed: int = 0, k: int = 5):
    """The page's task: 10 points drawn, the first k kept."""
    return SineTaskSampler(seed).sample(10).with_shots(k)


def curves_for(steps: int = 4, g: int = 7) -> dict[str, torch.Tensor]:
    """Distinct, recognisable curves: method i at step s is the constant 10 i + s."""
    return {m: torch.full((steps + 1, g), 10.0 * i) + torch.arange(steps + 1.0)[:, None] for i, m in enumerate(METHODS)}


# --- figures -------------------------------------------------------------------------------------------


def test_fit_figure_draws_the_truth_the_points_and_each_method_at_the_chosen_step():
    grid, curves = torch.linspace(-5, 5, 7), curves_for()
    fig = fit_figure(grid, torch.sin(grid), torch.tensor([0.0, 1.0]), torch.tensor([0.5, -0.5]), curves, step=2)
    names = [t.name for t in fig.data]
    assert names == [TRUE_NAME] + [method_label(m) for m in METHODS] + [f"{SUPPORT_NAME} (K = 2)"]
    for i in range(len(METHODS)):
        assert list(fig.data[1 + i].y) == [10.0 * i + 2] * 7
    assert list(fig.data[-1].x) == [0.0, 1.0] and list(fig.data[-1].y) == [0.5, -0.5]
    assert "after 2 inner steps" in fig.layout.title.text
    # Without a true curve there is no trace for it; the default step is the last.
    fig = fit_figure(grid, None, grid[:1], grid[:1], curves)
    assert TRUE_NAME not in [t.name for t in fig.data]
    assert list(fig.data[0].y) == [4.0] * 7


def test_fit_figure_refuses_a_step_it_has_no_curve_for():
    grid = torch.linspace(-5, 5, 7)
    with pytest.raises(ValueError, match="between 0 and 4"):
        fit_figure(grid, None, grid[:1], grid[:1], curves_for(), step=5)


def test_a_diverged_curve_becomes_gaps_not_broken_json():
    grid, curves = torch.linspace(-5, 5, 7), curves_for(1)
    curves["maml"][1, :3] = torch.tensor([math.inf, -math.inf, math.nan])
    fig = fit_figure(grid, None, grid[:1], grid[:1], curves, step=1)
    assert list(fig.data[0].y)[:4] == [None, None, None, 1.0]
    json.loads(pio.to_json(fig))  # strict JSON: no Infinity or NaN tokens


def test_fit_animation_has_one_frame_per_step_moving_only_the_fitted_curves():
    grid, curves = torch.linspace(-5, 5, 7), curves_for(steps=4)
    fig = fit_animation(grid, torch.cos(grid), grid[:3], grid[:3], curves)
    assert [f.name for f in fig.frames] == ["0", "1", "2", "3", "4"]
    for s, frame in enumerate(fig.frames):
        assert list(frame.traces) == [1, 2, 3]  # after the true curve: the three methods
        assert [list(d.y) for d in frame.data] == [[10.0 * i + s] * 7 for i in range(3)]
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ play steps 0 to 4", "❚❚ pause"]
    assert list(fig.data[1].y) == [4.0] * 7  # opens on the last step, where play also ends


def test_fit_animation_has_no_step_slider_of_its_own():
    """The page's step slider is the one step control: a second one on the plot could never move the table."""
    grid, curves = torch.linspace(-5, 5, 7), curves_for(steps=4)
    fig = fit_animation(grid, torch.cos(grid), grid[:3], grid[:3], curves)
    assert not fig.layout.sliders


def test_clickable_figure_ends_with_an_invisible_placement_grid_and_ignores_the_mouse_elsewhere():
    grid = torch.linspace(-5, 5, 7)
    fig = fit_figure(grid, torch.sin(grid), grid[:2], grid[:2], curves_for(), clickable=True)
    layer = fig.data[-1]
    assert layer.name == PLACEMENT_NAME and layer.marker.opacity == 0
    assert all(t.hoverinfo == "skip" for t in fig.data[:-1])
    assert fig.layout.xaxis.fixedrange and fig.layout.yaxis.fixedrange  # a drag must not zoom away
    assert fit_figure(grid, None, grid[:2], grid[:2], curves_for()).data[-1].name != PLACEMENT_NAME


def test_placement_grid_covers_the_whole_plot():
    layer = placement_grid(step=0.5)
    pts = set(zip(layer.x, layer.y))
    assert len(pts) == 21 * 23
    assert {(-5.0, -5.5), (5.0, 5.5), (0.0, 0.0), (-5.0, 5.5)} <= pts
    with pytest.raises(ValueError):
        placement_grid(step=0)


def is_125(v: float) -> bool:
    """True for 1, 2 or 5 times a power of ten."""
    mantissa = v / 10 ** math.floor(math.log10(v) + 1e-9)
    return any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 5))


@pytest.mark.parametrize(
    "values",
    [
        [0.9, 0.31, 0.12],  # under a decade: Plotly labelled these "2, 1, 5, 2, 0.1"
        [3.0, 0.5, 0.02, 0.004],
        [5.6, 4.1, 0.0021],
        [2.0, 2.0],
        [1e-7, 3.0, 900.0],
    ],
)
def test_log_ticks_are_1_2_5_or_decades_with_labels_written_out(values):
    ticks, labels = log_ticks(values + [None, math.inf, 0.0, -1.0])  # gaps and non-positives are left out
    assert len(ticks) >= 2 and ticks == sorted(set(ticks))
    assert all(is_125(t) for t in ticks)
    # Either every 1, 2 and 5 in a row, or whole decades (some skipped when there are many).
    ratios = [b / a for a, b in zip(ticks, ticks[1:])]
    assert all(math.isclose(r, 2) or math.isclose(r, 2.5) for r in ratios) or all(
        math.isclose(math.log10(r), round(math.log10(r))) and round(math.log10(r)) >= 1 for r in ratios
    )
    assert ticks[0] <= min(values) and ticks[-1] >= max(values) and len(ticks) <= 8
    assert len(set(labels)) == len(labels)  # no "2" twice
    for t, label in zip(ticks, labels):
        assert float(label) == pytest.approx(t)  # each label is the value itself, not just its digit
        assert "e" not in label or not 1e-3 <= t < 1e5  # plain decimals near 1


def test_log_ticks_choose_1_2_5_under_a_decade_and_decades_over_many():
    assert log_ticks([0.9, 0.31, 0.12]) == ([0.1, 0.2, 0.5, 1.0], ["0.1", "0.2", "0.5", "1"])
    assert log_ticks([3.0, 0.004]) == ([0.001, 0.01, 0.1, 1.0, 10.0], ["0.001", "0.01", "0.1", "1", "10"])
    assert log_ticks([]) == ([], [])


def test_loss_figure_ticks_its_log_axis_with_log_ticks():
    support = {"maml": [0.9, 0.31, 0.12], "scratch": [0.8, 0.7, 0.6]}
    fig = loss_figure(support, {"maml": [1.0, 0.5, 0.25]})
    ticks, labels = log_ticks([0.9, 0.31, 0.12, 0.8, 0.7, 0.6, 1.0, 0.5, 0.25])
    assert list(fig.layout.yaxis.tickvals) == ticks and list(fig.layout.yaxis.ticktext) == labels
    low, high = fig.layout.yaxis.range  # in decades: every tick is inside the axis
    assert low <= math.log10(ticks[0]) and math.log10(ticks[-1]) <= high


def test_loss_figure_has_support_and_true_curve_lines():
    fig = loss_figure({"maml": [1.0, 0.5, 0.0], "scratch": [2.0, 1.0, 0.5]}, {"maml": [2.0, 1.0, 0.8]}, step=1)
    assert [t.name for t in fig.data] == ["MAML: support", "MAML: true curve", "from scratch: support"]
    assert list(fig.data[0].y) == [1.0, 0.5, None]  # log axis: a zero is a gap
    assert fig.layout.yaxis.type == "log"


def selection(*points) -> dict:
    return {"selection": {"points": list(points), "point_indices": [], "box": [], "lasso": []}}


def test_point_from_selection_reads_a_click():
    assert point_from_selection(selection({"x": 1.2, "y": -3.4, "curve_number": 4})) == (1.2, -3.4)
    # Streamlit's event allows attribute access; the last point of a multi-point selection wins.
    event = SimpleNamespace(selection={"points": [{"x": 1, "y": 2}, {"x": 0.30000000000000004, "y": 5}]})
    assert point_from_selection(event) == (0.3, 5.0)
    # Restricted to one trace: points on others are skipped.
    event = selection({"x": 1, "y": 1, "curve_number": 4}, {"x": 2, "y": 2, "curve_number": 0})
    assert point_from_selection(event, curve=4) == (1.0, 1.0)
    assert point_from_selection(event, curve=7) is None


@pytest.mark.parametrize(
    "event",
    [
        None,
        {},
        selection(),
        {"selection": None},
        {"selection": {"points": "x"}},
        {"selection": {"points": [3, None, "p"]}},
        selection({"x": "1", "y": 2}),
        selection({"x": 1}),
        selection({"x": math.nan, "y": 2}),
        selection({"x": True, "y": 2}),
        "not an event",
    ],
)
def test_point_from_selection_gives_none_for_empty_or_malformed_events(event):
    assert point_from_selection(event) is None


# --- explore and the point helpers -------------------------------------------------------------------


def test_explore_starts_from_the_unadapted_models_and_maml_fits_the_points(regressors):
    grid = x_grid()
    for seed in (0, 3, 7):
        task = task_of(seed, 5)
        run = explore(regressors, task.support_x, task.support_y, 10, truth=task.true_curve)
        assert list(run.runs) == list(METHODS) and run.steps == 10
        for m, r in run.runs.items():
            assert r.curves.shape == (11, 200)
            with torch.no_grad():
                assert torch.allclose(r.curves[0], regressors.models[m](grid))
            assert r.lr == regressors.lrs[m] and not r.diverged
        maml = run.runs["maml"].support_mse
        assert maml[-1] < 0.5 * maml[0]
        assert all(b <= a + 1e-6 for a, b in zip(maml, maml[1:]))  # falls at every step
        assert torch.allclose(run.true_curve, task.true_curve(grid))
        eval_x = x_grid(100)
        with torch.no_grad():
            step0 = float(((regressors.models["maml"](eval_x) - task.true_curve(eval_x)) ** 2).mean())
        assert run.runs["maml"].true_mse[0] == pytest.approx(step0, rel=1e-5)


def test_explore_table_and_options(regressors):
    task = task_of(1, 10)
    run = explore(regressors, task.support_x, task.support_y, 3, lr=0.05, methods=["scratch", "maml"])
    assert list(run.runs) == ["scratch", "maml"]
    assert run.true_curve is None and all(r.true_mse is None for r in run.runs.values())
    rows = run.table(1)
    assert [r["method"] for r in rows] == ["scratch", "maml"] and all(r["lr"] == 0.05 for r in rows)
    assert rows[1]["support_mse"] == run.runs["maml"].support_mse[1] and rows[1]["true_mse"] is None
    with pytest.raises(ValueError, match="between 0 and 3"):
        run.table(4)
    with pytest.raises(ValueError, match="at least one method"):
        explore(regressors, task.support_x, task.support_y, 3, methods=[])
    with pytest.raises(ValueError, match="lr must be"):
        explore(regressors, task.support_x, task.support_y, 3, lr=0.0)
    huge = explore(regressors, task.support_x, task.support_y, 10, lr=1e3, methods=["scratch"])
    assert huge.runs["scratch"].diverged


def test_points_to_tensors_accepts_placed_points_and_refuses_what_cannot_be_fitted():
    x, y = points_to_tensors([(0.5, 1.0), [-5, 5.5]])
    assert x.tolist() == [0.5, -5.0] and y.tolist() == [1.0, 5.5]
    with pytest.raises(ValueError, match="no points"):
        points_to_tensors([])
    with pytest.raises(ValueError, match="point 2 .* outside"):
        points_to_tensors([(0, 0), (6, 0)])
    with pytest.raises(ValueError, match="outside"):
        points_to_tensors([(0, math.nan)])
    with pytest.raises(ValueError, match="not an \\(x, y\\) pair"):
        points_to_tensors([(0, 0, 0)])
    with pytest.raises(ValueError, match=f"at most {MAX_POINTS}"):
        points_to_tensors([(0, 0)] * (MAX_POINTS + 1))


def test_snapped_points_lie_on_the_wave_and_others_do_not():
    task = task_of(2)
    pts = [snap(task, x) for x in (-4.9, -1.23456, 0.0, 3.3)]
    x, y = points_to_tensors(pts)
    assert lies_on(task, x, y)
    assert not lies_on(task, x, y + 0.05)
    assert lies_on(task, task.support_x, task.support_y)
    assert not lies_on(task, x[:0], y[:0])


def test_card_mse_reads_the_shipped_card():
    from playground.zoo.card import ModelCard
    from playground.zoo.checkpoints import read_card

    card = read_card(sinusoid.DEFAULT_PATH)
    assert card_mse(card, "maml", 5, 10, 0.01) == "0.398 ± 0.086"
    assert card_mse(card, "scratch", 10, 1, 0.02) == "3.959 ± 0.280"
    assert card_mse(card, "maml", 5, 10, 0.02) is None  # another step size was not measured
    assert card_mse(card, "maml", 7, 10, 0.01) is None
    assert card_mse(None, "maml", 5, 10, 0.01) is None
    assert card_mse(ModelCard.from_dict({"evaluation": {}}), "maml", 5, 10, 0.01) is None


# --- the page --------------------------------------------------------------------------------------------


def new_page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120).run()


def table(at: AppTest):
    (df,) = at.dataframe
    return df.value


def messages(at: AppTest) -> str:
    return " ".join(e.value for e in list(at.error) + list(at.warning) + list(at.info))


def same_floats(values):
    """The library's figures as the page may compute them in its own script thread.

    That thread may run torch's float32 kernels with another thread count, so sums are
    added in another order: equal up to float32 rounding, not bit for bit.
    """
    return pytest.approx(values, rel=1e-4, abs=1e-7)


def expected_rows(regressors, task, steps: int, step: int | None = None, lr: float | None = None):
    return explore(regressors, task.support_x, task.support_y, steps, lr=lr, truth=task.true_curve).table(step)


def click(at: AppTest, x: float, y: float) -> AppTest:
    """What the browser sends when a placement marker is clicked: the chart's selection, then a rerun.

    AppTest has no plotly interaction, so the selection goes in as the chart's widget state
    through its (private) run method, exactly as the frontend would send it.
    """
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith("-sine_click")]
    event = selection({"x": x, "y": y, "curve_number": at.session_state["sine_click_curve"], "point_index": 0})
    states = at._tree.get_widget_states()
    states.widgets.append(WidgetState(id=chart.proto.id, string_value=json.dumps(event)))
    return at._run(states)


def test_page_renders_the_sampled_task_its_fits_and_the_card_figures(regressors):
    at = new_page()
    assert not at.exception
    assert at.title[0].value.endswith("Sine regression")
    df = table(at)
    assert df["method"].tolist() == [method_label(m) for m in METHODS]
    rows = expected_rows(regressors, task_of(0, 5), 10)
    assert df["support MSE (5 points)"].tolist() == same_floats([r["support_mse"] for r in rows])
    assert df["MSE vs true curve"].tolist() == same_floats([r["true_mse"] for r in rows])
    assert df["typical MSE vs true curve (600 test tasks)"].tolist()[0] == "0.398 ± 0.086"
    (chart,) = at.get("plotly_chart")[:1]
    assert len(json.loads(chart.proto.spec)["frames"]) == 11  # the animation: steps 0..10


def test_changing_k_and_steps_updates_the_table(regressors):
    at = new_page()
    at.slider(key="sine_k").set_value(10).run()
    rows = expected_rows(regressors, task_of(0, 10), 10)
    assert table(at)["support MSE (10 points)"].tolist() == same_floats([r["support_mse"] for r in rows])
    at.slider(key="sine_steps").set_value(3).run()
    assert not at.exception
    rows = expected_rows(regressors, task_of(0, 10), 3)
    assert table(at)["support MSE (10 points)"].tolist() == same_floats([r["support_mse"] for r in rows])
    assert table(at)["MSE vs true curve"].tolist() == same_floats([r["true_mse"] for r in rows])
    at.slider(key="sine_steps").set_value(0).run()  # no steps: the unadapted models, and nothing to play
    assert not at.exception
    rows = expected_rows(regressors, task_of(0, 10), 0)
    assert table(at)["MSE vs true curve"].tolist() == same_floats([r["true_mse"] for r in rows])
    assert not [c for c in at.get("plotly_chart") if json.loads(c.proto.spec).get("frames")]


def test_one_step_control_sets_the_figure_the_table_and_the_losses(regressors):
    at = new_page()
    at.slider(key="sine_steps").set_value(4).run()
    (step_sliders,) = [s for s in at.slider if "step" in s.label.lower()]  # and none on the plot
    assert step_sliders.key == "sine_steps"
    animation, losses = (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
    assert "sliders" not in animation["layout"]
    assert [f["name"] for f in animation["frames"]] == ["0", "1", "2", "3", "4"]
    assert animation["layout"]["title"]["text"] == "after 4 inner steps"  # the figure opens on that step
    assert all(len(t["x"]) == 5 for t in losses["data"])  # the losses run to it
    assert "After 4 steps." in " ".join(c.value for c in at.caption)


def test_the_step_size_and_method_controls_show_every_choice():
    at = new_page()
    (lr,) = [r for r in at.radio if r.key == "sine_lr_mode"]
    assert list(lr.options) == [OWN_LR, ONE_LR] and lr.value == OWN_LR
    (methods,) = at.pills
    assert methods.key == "sine_methods" and methods.options == [method_label(m) for m in METHODS]
    assert methods.value == list(METHODS)  # all chosen, each one in view as a pill
    methods.set_value(["scratch", "maml"]).run()
    assert table(at)["method"].tolist() == ["MAML", "from scratch"]  # in the usual order, whatever the clicks


def test_new_task_button_draws_another_wave(regressors):
    at = new_page()
    before = table(at)["MSE vs true curve"].tolist()
    at.button(key="sine_new_task").click().run()
    assert not at.exception
    assert at.session_state["sine_seed"] == 1
    after = table(at)["MSE vs true curve"].tolist()
    assert after != pytest.approx(before)
    rows = expected_rows(regressors, task_of(1, 5), 10)
    assert after == same_floats([r["true_mse"] for r in rows])


def test_placed_points_are_fitted_without_a_true_curve(regressors):
    at = new_page()
    at.radio(key="sine_mode").set_value(PLACED).run()
    assert "No points placed yet" in messages(at)
    assert not at.dataframe
    at.session_state["sine_points"] = [(-2.0, 1.0), (0.0, 3.0), (2.5, -1.0)]
    at.run()
    assert not at.exception
    df = table(at)
    assert "MSE vs true curve" not in df.columns
    assert "no true curve" in messages(at)
    x, y = torch.tensor([-2.0, 0.0, 2.5]), torch.tensor([1.0, 3.0, -1.0])
    want = [r["support_mse"] for r in explore(regressors, x, y, 10).table()]
    assert df["support MSE (3 points)"].tolist() == same_floats(want)


def test_clicks_place_points_and_snapping_puts_them_on_the_wave():
    at = new_page()
    at.radio(key="sine_mode").set_value(PLACED).run()
    click(at, 1.2, 3.4)
    click(at, -2.0, 0.4)
    assert not at.exception
    assert at.session_state["sine_points"] == [(1.2, 3.4), (-2.0, 0.4)]
    assert "support MSE (2 points)" in table(at).columns
    at.run()  # a rerun without a new click adds nothing
    assert len(at.session_state["sine_points"]) == 2
    at.button(key="sine_clear").click().run()
    assert at.session_state["sine_points"] == []
    at.checkbox(key="sine_snap").check().run()
    click(at, 0.6, 5.0)
    click(at, -3.0, -5.0)
    (x0, y0), _ = at.session_state["sine_points"]
    assert x0 == 0.6 and y0 == pytest.approx(float(task_of(0).true_curve(torch.tensor(0.6))), abs=1e-3)
    assert "MSE vs true curve" in table(at).columns  # on the wave: the true curve is known
    at.button(key="sine_undo").click().run()
    assert at.session_state["sine_points"] == [(x0, y0)]


def test_sampled_points_can_be_copied_and_mode_switches_keep_placed_points():
    at = new_page()
    at.radio(key="sine_mode").set_value(PLACED).run()
    at.button(key="sine_copy").click().run()
    assert len(at.session_state["sine_points"]) == 5
    assert "MSE vs true curve" in table(at).columns
    at.radio(key="sine_mode").set_value(SAMPLED).run()
    at.radio(key="sine_mode").set_value(PLACED).run()
    assert len(at.session_state["sine_points"]) == 5


def test_a_bad_step_size_gives_a_message_and_keeps_the_points():
    at = new_page()
    at.radio(key="sine_mode").set_value(PLACED).run()
    at.session_state["sine_points"] = [(0.0, 1.0), (1.0, 2.0)]
    at.radio(key="sine_lr_mode").set_value(ONE_LR).run()
    at.number_input(key="sine_lr").set_value(0.0).run()
    assert not at.exception
    assert "Step size: lr must be a positive finite number" in " ".join(e.value for e in at.error)
    assert not at.dataframe
    assert at.session_state["sine_points"] == [(0.0, 1.0), (1.0, 2.0)]
    at.number_input(key="sine_lr").set_value(0.03).run()
    df = table(at)
    assert df["step size"].tolist() == [0.03] * 3
    at.number_input(key="sine_lr").set_value(10.0).run()  # too large: the fits blow up, and it says so
    assert not at.exception
    assert "diverged" in messages(at)
    assert at.session_state["sine_points"] == [(0.0, 1.0), (1.0, 2.0)]


def test_no_method_chosen_gives_a_warning():
    at = new_page()
    at.pills(key="sine_methods").set_value([]).run()
    assert not at.exception
    assert "Choose at least one method" in messages(at)
    assert not at.dataframe


def test_a_missing_checkpoint_gives_an_error_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(sinusoid, "DEFAULT_PATH", str(tmp_path / "none.pt"))
    at = new_page()
    assert not at.exception
    (error,) = at.error
    assert "cannot be loaded" in error.value and "none.pt" in error.value


# --- in a real browser -------------------------------------------------------------------------------------

# Text a person cannot read in full: cut off with an ellipsis, or pushed out of a box that hides or
# scrolls its overflow. Charts, tables and formulas (KaTeX) lay out their own text and are left out.
CLIPPED_JS = """
const out = [];
for (const el of document.querySelector('[data-testid=stMain]').querySelectorAll('*')) {
  if (!el.getClientRects().length || el.closest('.js-plotly-plot, [data-testid=stDataFrame], .katex')) continue;
  const cs = getComputedStyle(el);
  const clips = cs.textOverflow === 'ellipsis' || ['hidden', 'auto', 'scroll', 'clip'].includes(cs.overflowX);
  if (clips && el.scrollWidth > el.clientWidth + 1 && el.innerText.trim()) out.push(el.innerText.trim());
}
return out;
"""


def wait_for_charts(driver, count: int, timeout: float = 120.0) -> list:
    import time

    deadline = time.monotonic() + timeout
    while len(charts := driver.find_elements("css selector", ".js-plotly-plot")) < count:
        assert time.monotonic() < deadline, f"fewer than {count} charts were drawn"
        time.sleep(0.3)
    return charts


@pytest.mark.browser
@pytest.mark.slow
def test_in_a_browser_every_control_reads_in_full_and_the_log_axis_plainly(app_server):
    from browser import browser, open_app, require_chromium, wait_for_text, wait_until_idle

    require_chromium()
    url = app_server
    with browser(1400, 1000) as driver:
        open_app(driver, url)
        driver.find_element("xpath", "//a[contains(normalize-space(.), 'Sine regression')]").click()
        wait_for_text(driver, "Support points", timeout=120)
        _, losses = wait_for_charts(driver, 2)
        wait_until_idle(driver)
        assert driver.execute_script(CLIPPED_JS) == []
        for name in ("MAML", "pretrained", "from scratch"):
            (pill,) = [b for b in driver.find_elements("css selector", ".st-key-sine_methods button") if b.text == name]
            assert pill.is_displayed()
        ticks = [t.text for t in losses.find_elements("css selector", ".ytick text")]
        assert len(ticks) >= 2 and len(set(ticks)) == len(ticks)  # not "2, 1, 5, 2, 0.1"
        assert [float(t) for t in ticks] == sorted(float(t) for t in ticks)
        # The placing tools, above the figure, read in full too.
        driver.find_element("xpath", "//label[contains(normalize-space(.), 'Placed by clicking')]").click()
        wait_for_text(driver, "Snap onto the sampled wave")
        wait_until_idle(driver)
        assert driver.execute_script(CLIPPED_JS) == []

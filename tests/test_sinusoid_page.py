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
from playground.sinusoid import METHODS, SineTaskSampler, load_regressors, x_grid
from playground.sinusoid.explore import (
    MAX_POINTS,
    card_mse,
    explore,
    lies_on,
    points_to_tensors,
    snap,
)
from playground.sinusoid.figures import (
    PLACEMENT_NAME,
    SUPPORT_NAME,
    TRUE_NAME,
    fit_animation,
    fit_figure,
    loss_figure,
    method_label,
    placement_grid,
    point_from_selection,
)

PAGE = "../pages/sinusoid.py"
SAMPLED, PLACED = "Sampled from a sine task", "Placed by clicking"


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
    fig = fit_animation(grid, torch.cos(grid), grid[:3], grid[:3], curves, step=1)
    assert [f.name for f in fig.frames] == ["0", "1", "2", "3", "4"]
    for s, frame in enumerate(fig.frames):
        assert list(frame.traces) == [1, 2, 3]  # after the true curve: the three methods
        assert [list(d.y) for d in frame.data] == [[10.0 * i + s] * 7 for i in range(3)]
    slider = fig.layout.sliders[0]
    assert slider.active == 1 and [s.label for s in slider.steps] == ["0", "1", "2", "3", "4"]
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ play", "❚❚ pause"]
    assert list(fig.data[1].y) == [1.0] * 7  # opens on the chosen step


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
    from playground.checkpoints import read_card

    card = read_card(sinusoid.DEFAULT_PATH)
    assert card_mse(card, "maml", 5, 10, 0.01) == "0.398 ± 0.086"
    assert card_mse(card, "scratch", 10, 1, 0.02) == "3.959 ± 0.280"
    assert card_mse(card, "maml", 5, 10, 0.02) is None  # another step size was not measured
    assert card_mse(card, "maml", 7, 10, 0.01) is None
    assert card_mse(None, "maml", 5, 10, 0.01) is None
    assert card_mse({"evaluation": {}}, "maml", 5, 10, 0.01) is None


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


def test_changing_k_steps_and_the_shown_step_updates_the_table(regressors):
    at = new_page()
    at.slider(key="sine_k").set_value(10).run()
    rows = expected_rows(regressors, task_of(0, 10), 10)
    assert table(at)["support MSE (10 points)"].tolist() == same_floats([r["support_mse"] for r in rows])
    at.slider(key="sine_steps").set_value(3).run()
    assert not at.exception
    rows = expected_rows(regressors, task_of(0, 10), 3)
    assert table(at)["support MSE (10 points)"].tolist() == same_floats([r["support_mse"] for r in rows])
    at.slider(key="sine_show_3").set_value(0).run()
    rows = expected_rows(regressors, task_of(0, 10), 3, step=0)
    assert table(at)["MSE vs true curve"].tolist() == same_floats([r["true_mse"] for r in rows])
    at.slider(key="sine_steps").set_value(0).run()  # no steps: no step slider, the unadapted models
    assert not at.exception and not [s for s in at.slider if s.key.startswith("sine_show")]


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
    at.toggle(key="sine_lr_override").set_value(True).run()
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
    at.multiselect(key="sine_methods").set_value([]).run()
    assert not at.exception
    assert "Choose at least one method" in messages(at)
    assert not at.dataframe


def test_a_missing_checkpoint_gives_an_error_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(sinusoid, "DEFAULT_PATH", str(tmp_path / "none.pt"))
    at = new_page()
    assert not at.exception
    (error,) = at.error
    assert "cannot be loaded" in error.value and "none.pt" in error.value

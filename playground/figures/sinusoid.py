"""Plotly figures of sine fits (no Streamlit here), and reading a click on them back as a point.

`fit_figure` draws the true curve, the K support points and each method's curve after one
inner step; `fit_animation` is the same with a frame per step and a button to play them;
`loss_figure` plots the errors against the step, on a log axis with `log_ticks`.
`placement_grid` is a layer of invisible markers that makes every spot of the plot clickable,
and `point_from_selection` turns the selection event a click produces (Streamlit's
``on_select``) into an ``(x, y)`` pair.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
import torch

from playground.sinusoid.tasks import X_RANGE

METHOD_STYLE = {  # label and colour, the same on every figure
    "maml": ("MAML", "#4B6BFB"),
    "pretrained": ("pretrained", "#F08C00"),
    "scratch": ("from scratch", "#7F8C8D"),
}
TRUE_NAME = "true curve"
SUPPORT_NAME = "support points"
PLACEMENT_NAME = "click to place"
Y_RANGE = (-5.5, 5.5)  # where points can be placed: every wave fits (|A| <= 5)
VIEW_X = (X_RANGE[0] - 0.3, X_RANGE[1] + 0.3)
VIEW_Y = (-6.2, 6.2)  # fixed, so a diverging fit or an animation never rescales the axes


def method_label(method: str) -> str:
    """The name a method is shown under."""
    return METHOD_STYLE.get(method, (method, None))[0]


def _values(t: torch.Tensor | Sequence[float]) -> list[float | None]:
    """Plain floats for plotly; inf and NaN (a diverged fit) become gaps instead of breaking the JSON."""
    vals = t.detach().reshape(-1).tolist() if isinstance(t, torch.Tensor) else list(t)
    # Rounded to 4 decimals: invisible on the plot, and it halves the JSON sent on every rerun.
    return [round(float(v), 4) if v is not None and math.isfinite(v) else None for v in vals]


def _method_trace(method: str, grid: list[float | None], curve: torch.Tensor, hover: bool) -> go.Scatter:
    label, color = METHOD_STYLE.get(method, (method, None))
    return go.Scatter(
        x=grid,
        y=_values(curve),
        name=label,
        mode="lines",
        line=dict(color=color, width=2.5),
        hovertemplate=f"{label}: %{{y:.2f}} at x = %{{x:.2f}}<extra></extra>" if hover else None,
        hoverinfo=None if hover else "skip",
    )


def _check_step(curves: Mapping[str, torch.Tensor], step: int | None) -> tuple[int, int]:
    """(the number of steps the curves hold, the step to show: default the last)."""
    counts = {c.shape[0] - 1 for c in curves.values()}
    if len(counts) > 1:
        raise ValueError(f"every method needs the same number of steps (got {sorted(counts)})")
    steps = counts.pop() if counts else 0
    step = steps if step is None else step
    if not 0 <= step <= steps:
        raise ValueError(f"step must be between 0 and {steps} (got {step})")
    return steps, step


def placement_grid(step: float = 0.2) -> go.Scatter:
    """Invisible markers every ``step`` over x in [-5, 5], y in [-5.5, 5.5]: a click on one places a point there."""
    if not step > 0:
        raise ValueError(f"step must be positive (got {step})")
    xs = torch.arange(X_RANGE[0], X_RANGE[1] + step / 2, step)
    ys = torch.arange(Y_RANGE[0], Y_RANGE[1] + step / 2, step)
    gx, gy = torch.meshgrid(xs, ys, indexing="ij")
    return go.Scatter(
        x=[round(v, 3) for v in gx.reshape(-1).tolist()],
        y=[round(v, 3) for v in gy.reshape(-1).tolist()],
        name=PLACEMENT_NAME,
        mode="markers",
        # Opacity 0, not visible=False: hidden traces take no clicks, transparent ones do.
        marker=dict(size=12, opacity=0, color="#000"),
        # Keep the invisible markers invisible when a click selects one (plotly restyles both sets).
        selected=dict(marker=dict(opacity=0)),
        unselected=dict(marker=dict(opacity=0)),
        hovertemplate="click to place a point at (%{x:.1f}, %{y:.1f})<extra></extra>",
        showlegend=False,
    )


def fit_figure(
    grid: torch.Tensor,
    true_curve: torch.Tensor | None,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    curves: Mapping[str, torch.Tensor],
    step: int | None = None,
    *,
    clickable: bool = False,
    title: str = "",
) -> go.Figure:
    """The true curve (if known), the support points and each method's curve (``[steps + 1, G]``) after ``step``.

    With ``clickable`` a `placement_grid` is added last and the other traces ignore the
    mouse, so every click lands on the grid and means "a point here".
    """
    _, step = _check_step(curves, step)
    xs = _values(grid)
    hover = not clickable
    fig = go.Figure()
    if true_curve is not None:
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=_values(true_curve),
                name=TRUE_NAME,
                mode="lines",
                line=dict(color="#222", width=2, dash="dash"),
                hovertemplate="true: %{y:.2f} at x = %{x:.2f}<extra></extra>" if hover else None,
                hoverinfo=None if hover else "skip",
            )
        )
    for method, c in curves.items():
        fig.add_trace(_method_trace(method, xs, c[step], hover))
    fig.add_trace(
        go.Scatter(
            x=_values(support_x),
            y=_values(support_y),
            name=f"{SUPPORT_NAME} (K = {support_x.numel()})",
            mode="markers",
            marker=dict(color="#D62728", size=11, line=dict(color="#fff", width=1.5)),
            hovertemplate="support (%{x:.2f}, %{y:.2f})<extra></extra>" if hover else None,
            hoverinfo=None if hover else "skip",
        )
    )
    if clickable:
        fig.add_trace(placement_grid())
    fig.update_layout(
        title=title or (f"after {step} inner step{'s' if step != 1 else ''}" if curves else ""),
        height=460,
        margin=dict(l=10, r=10, t=40, b=10),
        # No axis titles: the legend sits just under the x axis, where its title would be.
        xaxis=dict(range=list(VIEW_X), zeroline=True, fixedrange=clickable),
        yaxis=dict(range=list(VIEW_Y), zeroline=True, fixedrange=clickable),
        legend=dict(orientation="h", x=0, y=-0.08, yanchor="top"),
        hovermode="closest",
    )
    return fig


def fit_animation(
    grid: torch.Tensor,
    true_curve: torch.Tensor | None,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    curves: Mapping[str, torch.Tensor],
    *,
    frame_ms: int = 400,
) -> go.Figure:
    """`fit_figure` after the last step, with a frame per inner step 0..S and a button that plays them.

    No slider of its own: the page's step control already chooses S, and two step controls that
    disagree (the plot's, client-side, could never move the page's table) are one too many. Play
    always ends on step S, where the table and the losses are.
    """
    steps, _ = _check_step(curves, None)
    fig = fit_figure(grid, true_curve, support_x, support_y, curves)
    first = 0 if true_curve is None else 1  # the method traces follow the true curve
    indices = list(range(first, first + len(curves)))
    fig.frames = [
        go.Frame(
            name=str(s),
            # Only y: a frame is merged into the traces it names, which keep their x, names and colours.
            data=[go.Scatter(y=_values(c[s])) for c in curves.values()],
            traces=indices,  # only the fitted curves move; the true curve and the points stay
            layout=dict(title=dict(text=f"after {s} inner step{'s' if s != 1 else ''}")),
        )
        for s in range(steps + 1)
    ]

    def go_to(frames: list[str | None] | None, ms: int) -> list[Any]:
        # Play (frames None) always starts from step 0: the point is to watch the fit move from the start.
        return [frames, dict(mode="immediate", frame=dict(duration=ms, redraw=True), transition=dict(duration=0))]

    fig.update_layout(
        margin=dict(l=10, r=10, t=40, b=10),
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0,
                y=-0.2,
                xanchor="left",
                yanchor="top",
                pad=dict(t=10),
                showactive=False,
                buttons=[
                    dict(label=f"▶ play steps 0 to {steps}", method="animate", args=go_to(None, frame_ms)),
                    dict(label="❚❚ pause", method="animate", args=go_to([None], 0)),
                ],
            )
        ],
        height=520,
    )
    return fig


def _tick_label(v: float) -> str:
    """A tick value as people write it: "0.002", "0.5", "20"; "2e-5" only far from 1."""
    if 1e-3 <= v < 1e5:
        return f"{v:.{max(0, -math.floor(math.log10(v) + 1e-9))}f}"
    mantissa, exponent = f"{v:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def log_ticks(values: Iterable[float | None], max_ticks: int = 8) -> tuple[list[float], list[str]]:
    """Ticks for a log axis spanning ``values`` (the positive, finite ones) and their labels.

    1, 2, 5 in each decade while that gives at most ``max_ticks``, else whole decades (every second,
    third... decade when even those are too many), always from a tick at or below the smallest
    value to one at or above the largest. Plotly's own log ticks label 2 and 5 with their digit
    alone, so a short range reads "2, 1, 5, 2, 0.1"; these are written out in full.
    """
    vals = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    if not vals:
        return [], []
    lo, hi = min(vals), max(vals)
    d0, d1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))

    def span(decades: range, mantissas: tuple[int, ...]) -> list[float]:
        """The ticks from the last one at or below ``lo`` to the first at or above ``hi``, at least two."""
        ticks = [float(f"{m}e{d}") for d in decades for m in mantissas]
        first = max(i for i, t in enumerate(ticks) if t <= lo * (1 + 1e-9))
        last = min(i for i, t in enumerate(ticks) if t >= hi * (1 - 1e-9))
        return ticks[first : max(last, first + 1) + 1]  # one value alone still gets a scale of two ticks

    # A decade either side, so a tick at or below (above) every value is always among the candidates.
    ticks = span(range(d0 - 1, d1 + 2), (1, 2, 5))
    every = 1
    while len(ticks) > max_ticks:  # whole decades; every second, third... one when even those are many
        start = every * math.floor(d0 / every)
        ticks = span(range(start - every, d1 + 2 * every, every), (1,))
        every += 1
    return ticks, [_tick_label(t) for t in ticks]


def loss_figure(
    support_mse: Mapping[str, Sequence[float]],
    true_mse: Mapping[str, Sequence[float] | None] | None = None,
    step: int | None = None,
) -> go.Figure:
    """Support MSE (solid) and, where known, MSE against the true curve (dotted) after each step, log scale."""
    fig = go.Figure()

    def positive(vals: Sequence[float]) -> list[float | None]:
        return [v if v is not None and v > 0 else None for v in _values(vals)]  # log axis: no zeros

    for method, losses in support_mse.items():
        label, color = METHOD_STYLE.get(method, (method, None))
        fig.add_trace(
            go.Scatter(
                x=list(range(len(losses))),
                y=positive(losses),
                name=f"{label}: support",
                mode="lines+markers" if len(losses) <= 30 else "lines",
                line=dict(color=color),
            )
        )
        truth = (true_mse or {}).get(method)
        if truth is not None:
            fig.add_trace(
                go.Scatter(
                    x=list(range(len(truth))),
                    y=positive(truth),
                    name=f"{label}: true curve",
                    mode="lines",
                    line=dict(color=color, dash="dot"),
                )
            )
    if step is not None:
        fig.add_vline(x=step, line=dict(color="#999", width=1, dash="dash"))
    tickvals, ticktext = log_ticks(v for t in fig.data for v in t.y)
    yaxis = dict(title="MSE (log scale)", type="log", tickvals=tickvals, ticktext=ticktext)
    if tickvals:
        # From the first tick to the last (a log axis' range is in decades), a little wider so the
        # markers on the end ticks are drawn whole.
        a, b = math.log10(tickvals[0]), math.log10(tickvals[-1])
        pad = 0.04 * max(b - a, 0.3)
        yaxis["range"] = [a - pad, b + pad]
    fig.update_layout(
        height=300,
        margin=dict(l=10, r=10, t=30, b=10),
        title="MSE after each inner step",
        xaxis=dict(title="inner step", rangemode="tozero"),
        yaxis=yaxis,
        legend=dict(orientation="h", y=-0.3),
    )
    return fig


def point_from_selection(event: Any, curve: int | None = None) -> tuple[float, float] | None:
    """The clicked ``(x, y)`` in a Streamlit plotly selection event (the last point; of trace ``curve`` if given).

    None when nothing usable is selected: an empty or cleared selection, or anything
    malformed (the event comes from the browser, so it is never trusted to have a shape).
    """
    selection = event.get("selection") if isinstance(event, Mapping) else getattr(event, "selection", None)
    points = selection.get("points") if isinstance(selection, Mapping) else None
    if not isinstance(points, Sequence) or isinstance(points, str):
        return None
    for p in reversed(points):
        if not isinstance(p, Mapping):
            continue
        if curve is not None and p.get("curve_number") != curve:
            continue
        x, y = p.get("x"), p.get("y")
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y))
        if ok:
            return round(float(x), 3), round(float(y), 3)
    return None

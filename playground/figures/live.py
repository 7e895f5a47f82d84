"""Plotly figures of a live meta-training run (`playground.training.live`), built from a `JobView`."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground.figures.charts import plot_text
from playground.figures.explorer import class_colour
from playground.training.live import PROBE_DRAWINGS, Measure, Progress, Snapshot, project

REFERENCE_NAMES = {"random": "random initialisation", "shipped": "shipped model"}
REFERENCE_COLOURS = {"random": "#9A9A9A", "shipped": "#2CA02C"}
LIVE_COLOUR = "#4B6BFB"


def _layout(fig: go.Figure, height: int, title: str) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)),
        height=height,
        margin=dict(l=10, r=10, t=50, b=10),
        # above the plot, clear of the top tick labels of either axis
        legend=dict(orientation="h", yanchor="bottom", y=1.06, xanchor="right", x=1),
    )
    return fig


def _seconds_range(seconds: list[float], budget: float) -> list[float]:
    """The whole budget from the start, and a margin so that the last point (just past it) is drawn whole."""
    return [0, 1.03 * max([budget, *seconds])]


def training_curves(progress: list[Progress], budget: float) -> go.Figure:
    """Meta-training loss and query accuracy (smoothed) against seconds of training."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    seconds = [p.seconds for p in progress]
    fig.add_trace(
        go.Scatter(x=seconds, y=[100 * p.accuracy for p in progress], name="accuracy", line_color=LIVE_COLOUR)
    )
    fig.add_trace(
        go.Scatter(x=seconds, y=[p.loss for p in progress], name="loss", line=dict(color="#E4572E", dash="dot")),
        secondary_y=True,
    )
    fig.update_xaxes(title="seconds of training", range=_seconds_range(seconds, budget))
    fig.update_yaxes(title="accuracy (%)", range=[0, 100], secondary_y=False)
    fig.update_yaxes(title="loss", rangemode="tozero", secondary_y=True, showgrid=False)
    return _layout(fig, 300, "Meta-training episodes")


def probe_accuracy(snapshots: list[Snapshot], references: dict[str, Measure], budget: float) -> go.Figure:
    """5-way 1-shot accuracy on the fixed evaluation episodes at each snapshot, with its 95% interval, beside
    the random initialisation's and the shipped model's."""
    fig = go.Figure()
    for name, measure in references.items():
        fig.add_hline(
            y=100 * measure.accuracy,
            line=dict(color=REFERENCE_COLOURS.get(name, "#888"), dash="dash"),
            annotation_text=f"{REFERENCE_NAMES.get(name, name)} {100 * measure.accuracy:.0f}%",
            annotation_position="bottom right",
        )
    fig.add_trace(
        go.Scatter(
            x=[s.seconds for s in snapshots],
            y=[100 * s.measure.accuracy for s in snapshots],
            error_y=dict(type="data", array=[100 * s.measure.ci95 for s in snapshots], thickness=1, width=3),
            mode="lines+markers",
            name="your model",
            line_color=LIVE_COLOUR,
            hovertemplate="%{x:.0f} s: %{y:.1f}%<extra></extra>",
        )
    )
    fig.update_xaxes(title="seconds of training", range=_seconds_range([s.seconds for s in snapshots], budget))
    fig.update_yaxes(title="accuracy (%)", range=[0, 100])
    fig.update_layout(showlegend=True)  # "your model" is named even while it is the only trace
    return _layout(fig, 300, "5-way 1-shot accuracy on new alphabets")


def embedding_snapshots(snapshots: list[Snapshot], names: list[str]) -> go.Figure | None:
    """The unseen characters' embeddings at the start and now, in one projection (the PCA of the latest
    model's); None when the learner has no embedding."""
    shown = [s for s in snapshots if s.measure.embedding is not None]
    if not shown:
        return None
    first, last = shown[0], shown[-1]
    coords = project([first.measure.embedding, last.measure.embedding])
    # Each panel scales to its own points: the random network's features are spread on another scale, and
    # shared axes would squash them into a line.
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.06,
        subplot_titles=[
            "at the start (random initialisation)",
            f"after {last.seconds:.0f} s ({last.iteration} iterations)",
        ],
    )
    for col, points in enumerate(coords, start=1):
        for c in range(len(points) // PROBE_DRAWINGS):
            block = points[c * PROBE_DRAWINGS : (c + 1) * PROBE_DRAWINGS]
            fig.add_trace(
                go.Scatter(
                    x=block[:, 0],
                    y=block[:, 1],
                    mode="markers",
                    marker=dict(color=class_colour(c), size=9, line=dict(color="white", width=1)),
                    name=plot_text(names[c] if c < len(names) else f"character {c + 1}"),
                    legendgroup=str(c),
                    showlegend=col == 1,
                    hovertemplate=f"{plot_text(names[c]) if c < len(names) else c}<extra></extra>",
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.01))
    fig.update_layout(title=dict(text="Unseen characters in the model's embedding", font=dict(size=14)))
    fig.update_annotations(font_size=12)  # the panels' titles
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=70, b=10))
    return fig


def inner_step_losses(snapshots: list[Snapshot], references: dict[str, Measure]) -> go.Figure | None:
    """Support loss after each inner step from the current initialisation, a few snapshots from faint (early)
    to strong (latest), beside the random initialisation's and the shipped model's; None without an inner loop."""
    shown = [s for s in snapshots if s.measure.step_losses is not None]
    if not shown:
        return None
    fig = go.Figure()
    for name, measure in references.items():
        if measure.step_losses is not None:
            fig.add_trace(
                go.Scatter(
                    y=measure.step_losses,
                    name=REFERENCE_NAMES.get(name, name),
                    line=dict(color=REFERENCE_COLOURS.get(name, "#888"), dash="dash"),
                )
            )
    picked = shown[:: max(1, len(shown) // 4)][-4:]
    if picked[-1] is not shown[-1]:
        picked = [*picked[1:], shown[-1]]
    for k, s in enumerate(picked):
        latest = s is shown[-1]
        fig.add_trace(
            go.Scatter(
                y=s.measure.step_losses,
                name=f"your model at {s.seconds:.0f} s",
                line=dict(color=LIVE_COLOUR, width=3 if latest else 1.5),
                opacity=1.0 if latest else 0.25 + 0.5 * k / max(1, len(picked) - 1),
            )
        )
    fig.update_xaxes(title="inner steps on the support set", dtick=1)
    fig.update_yaxes(title="support loss", rangemode="tozero")
    return _layout(fig, 300, "How fast the initialisation adapts")

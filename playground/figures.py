"""Plotly figures built from what the library returns (no Streamlit here)."""

from __future__ import annotations

import plotly.graph_objects as go

from playground.algorithms import StepRecord


def probability_bars(proba: list[float], class_names: list[str], predicted: int, title: str = "") -> go.Figure:
    """Horizontal bars of per-class probability, the predicted class highlighted."""
    colors = ["#4B6BFB" if i == predicted else "#C9D2F5" for i in range(len(proba))]
    fig = go.Figure(
        go.Bar(
            x=[100 * p for p in proba],
            y=class_names,
            orientation="h",
            marker_color=colors,
            hovertemplate="%{y}: %{x:.1f}%<extra></extra>",
        )
    )
    fig.update_layout(
        title=title,
        height=max(140, 26 * len(class_names) + 60),
        margin=dict(l=10, r=10, t=30 if title else 10, b=10),
        xaxis=dict(range=[0, 100], title="probability (%)"),
        yaxis=dict(autorange="reversed"),
        showlegend=False,
    )
    return fig


def adaptation_curve(trace: list[StepRecord], title: str = "MAML adaptation on the support set") -> go.Figure:
    """Support loss and accuracy after each inner step."""
    steps = [r.step for r in trace]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=steps, y=[r.loss for r in trace], name="support loss", mode="lines+markers"))
    fig.add_trace(
        go.Scatter(
            x=steps,
            y=[100 * r.accuracy for r in trace],
            name="support accuracy (%)",
            mode="lines+markers",
            yaxis="y2",
        )
    )
    fig.update_layout(
        title=title,
        height=320,
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title="inner step", dtick=1 if len(steps) <= 20 else None),
        yaxis=dict(title="loss", rangemode="tozero"),
        yaxis2=dict(title="accuracy (%)", overlaying="y", side="right", range=[0, 105], tickvals=[0, 25, 50, 75, 100]),
        legend=dict(orientation="h", y=-0.25),
    )
    return fig

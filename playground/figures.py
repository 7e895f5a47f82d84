"""Plotly figures built from what the library returns (no Streamlit here)."""

from __future__ import annotations

import html

import plotly.graph_objects as go

from playground.algorithms import StepRecord


def plot_text(text: object) -> str:
    """``text`` as literal text in a Plotly label, legend, tick or hover.

    Plotly reads labels as a subset of HTML (``<a href>``, ``<b>``, ``<span style>``), and class
    names come from visitors and from shared task files: escaped, a name is only ever shown.
    """
    return html.escape(str(text), quote=False)


def probability_bars(proba: list[float], class_names: list[str], predicted: int, title: str = "") -> go.Figure:
    """Horizontal bars of per-class probability, the predicted class highlighted."""
    colors = ["#4B6BFB" if i == predicted else "#C9D2F5" for i in range(len(proba))]
    fig = go.Figure(
        go.Bar(
            x=[100 * p for p in proba],
            y=[plot_text(n) for n in class_names],
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


def score_bars(
    models: list[str],
    values: list[float],
    title: str,
    axis_title: str,
    errors: list[float] | None = None,
    percent: bool = True,
    reference: tuple[float, str] | None = None,
) -> go.Figure:
    """One horizontal bar per model (best at the top), optional error bars and a reference line."""
    scale = 100 if percent else 1
    order = sorted(range(len(models)), key=lambda i: values[i], reverse=percent)
    fig = go.Figure(
        go.Bar(
            x=[scale * values[i] for i in order],
            y=[models[i] for i in order],
            orientation="h",
            marker_color="#4B6BFB",
            error_x=None
            if errors is None
            else dict(type="data", array=[scale * errors[i] for i in order], color="#333", thickness=1.5),
            text=[
                f"{scale * values[i]:.1f}" + ("" if errors is None else f" ± {scale * errors[i]:.1f}") for i in order
            ],
            textposition="inside" if percent else "outside",
            insidetextanchor="start",
            hovertemplate="%{y}: %{text}<extra></extra>",
        )
    )
    if reference is not None:
        fig.add_vline(x=scale * reference[0], line_dash="dash", line_color="#D62728", annotation_text=reference[1])
    fig.update_layout(
        title=title,
        height=max(200, 32 * len(models) + 110),
        margin=dict(l=10, r=30, t=40, b=10),
        # Room on the right for the labels outside the bars.
        xaxis=dict(title=axis_title, range=[0, 100] if percent else [0, 1.2 * max(values, default=1) or 1]),
        yaxis=dict(autorange="reversed"),
        showlegend=False,
    )
    return fig


def accuracy_curves(
    series: dict[str, tuple[list[int], list[float], list[float]]], x_title: str, title: str
) -> go.Figure:
    """Accuracy with 95% CI error bars for each model: ``series[name] = (x, means, cis)``."""
    fig = go.Figure()
    for name, (x, means, cis) in series.items():
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[100 * m for m in means],
                error_y=dict(type="data", array=[100 * c for c in cis], thickness=1),
                mode="lines+markers",
                name=name,
            )
        )
    fig.update_layout(
        title=title,
        height=380,
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title=x_title, dtick=1),
        yaxis=dict(title="accuracy (%)", range=[0, 101]),
        legend=dict(orientation="h", y=-0.2),
    )
    return fig

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


# One colour per model on a page of charts: told apart at a glance, the first ones also by most colour-blind
# eyes (blue, orange, green lead), and enough for every shipped model before any repeats.
MODEL_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#0d2a63",
    "#fb00d1",
    "#00a08b",
    "#b68100",
    "#511cfb",
    "#862a16",
    "#222a2a",
    "#6c7c32",
)


def model_colours(names: list[str]) -> dict[str, str]:
    """A colour for each model, by its place in ``names``: pass every chart of a page the same mapping, built
    from a list that does not change with the models chosen (the catalogue), and a model keeps its colour."""
    return {name: MODEL_PALETTE[i % len(MODEL_PALETTE)] for i, name in enumerate(names)}


def _legend_above() -> dict:
    # Above the plot and left-aligned: below it the legend would fight the axis title for room.
    return dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0)


def score_bars(
    models: list[str],
    values: list[float],
    title: str,
    axis_title: str,
    errors: list[float] | None = None,
    percent: bool = True,
    reference: tuple[float, str] | None = None,
    colours: dict[str, str] | None = None,
) -> go.Figure:
    """One horizontal bar per model (best at the top) in its colour (`model_colours`), with a legend, optional
    error bars and a reference line. A zero error bar is written as "same in every episode", not "± 0.0":
    it means the episodes showed no spread, not that the figure is exact."""
    scale = 100 if percent else 1
    order = sorted(range(len(models)), key=lambda i: values[i], reverse=percent)
    colours = colours or model_colours(models)
    fig = go.Figure()
    for i in order:
        value = f"{scale * values[i]:.1f}"
        if errors is not None:
            value += ", same in every episode" if errors[i] == 0 else f" ± {scale * errors[i]:.1f}"
        fig.add_trace(
            go.Bar(
                x=[scale * values[i]],
                y=[plot_text(models[i])],
                name=plot_text(models[i]),
                orientation="h",
                marker_color=colours.get(models[i], MODEL_PALETTE[0]),
                error_x=None
                if errors is None
                else dict(type="data", array=[scale * errors[i]], color="#333", thickness=1.5),
                text=[value],
                textposition="inside" if percent else "outside",
                insidetextanchor="start",
                hovertemplate="%{y}: %{text}<extra></extra>",
                legendrank=i,  # the legend keeps the models' order while the bars are sorted by value
            )
        )
    if reference is not None:
        fig.add_vline(x=scale * reference[0], line_dash="dash", line_color="#D62728", annotation_text=reference[1])
    fig.update_layout(
        title=title,
        height=max(200, 32 * len(models) + 140),
        margin=dict(l=10, r=30, t=70, b=10),
        # Room on the right for the labels outside the bars.
        xaxis=dict(title=axis_title, range=[0, 100] if percent else [0, 1.2 * max(values, default=1) or 1]),
        yaxis=dict(autorange="reversed"),
        barmode="overlay",  # one trace per model, each on its own row: full-width bars, not a group's slices
        showlegend=True,
        legend=_legend_above(),
    )
    return fig


def accuracy_curves(
    series: dict[str, tuple[list[int], list[float], list[float]]],
    x_title: str,
    title: str,
    colours: dict[str, str] | None = None,
) -> go.Figure:
    """Accuracy with 95% CI error bars for each model, in its colour (`model_colours`), with a legend even for
    one model: ``series[name] = (x, means, cis)``."""
    colours = colours or model_colours(list(series))
    fig = go.Figure()
    for name, (x, means, cis) in series.items():
        colour = colours.get(name, MODEL_PALETTE[0])
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[100 * m for m in means],
                error_y=dict(type="data", array=[100 * c for c in cis], thickness=1, color=colour),
                mode="lines+markers",
                name=plot_text(name),
                line=dict(color=colour),
                marker=dict(color=colour),
            )
        )
    fig.update_layout(
        title=title,
        height=400,
        margin=dict(l=10, r=10, t=70, b=10),
        xaxis=dict(title=x_title, dtick=1),
        yaxis=dict(title="accuracy (%)", range=[0, 101]),
        showlegend=True,
        legend=_legend_above(),
    )
    return fig

"""Plotly figures for the beat-the-human view: errors on Lake's runs beside people's 4.5% (no Streamlit here)."""

from __future__ import annotations

import plotly.graph_objects as go

from playground.lake.game import LakeScore, error_percent
from playground.lake.runs import HUMAN_ERROR

MODEL_COLOR = "#4B6BFB"
LIVE_COLOR = "#2E3FA8"  # measured now: darker than a card's figure, so the two are told apart
YOU_COLOR = "#F59E0B"
HUMAN_COLOR = "#D62728"


def _color(s: LakeScore) -> str:
    if s.source == "you":
        return YOU_COLOR
    return LIVE_COLOR if s.source.startswith("measured") else MODEL_COLOR


LABEL_PX = 18  # a bar label's height in pixels, its padding included
X_AXIS_PX = (60, 110)  # what the x axis takes below the plot: tick names and title, flat or angled


def _label_positions(
    tops: list[float], line: float, top: float, plot_px: float, cap: float = 100.0
) -> tuple[list[float], float]:
    """Where each bar's label sits (its bottom, in % error) and the y axis' upper end.

    A label goes just above its bar's whisker; where it would cross the people line it moves just above
    the line, so the line never runs through a number. The axis then grows to fit the highest label. The
    label's height in axis units depends on that upper end, so the two are settled together.
    """
    upper = min(cap, top * 1.15 + 2)
    bottoms: list[float] = []
    for _ in range(4):  # converges in two or three rounds; four keeps it exact enough for any input
        height = LABEL_PX / plot_px * upper
        gap = 0.2 * height
        bottoms = []
        for t in tops:
            bottom = t + gap
            if bottom < line + gap and bottom + height > line - gap:  # it would cross the line
                bottom = line + gap
            bottoms.append(bottom)
        upper = max([upper] + [b + height * 1.05 for b in bottoms])
    return bottoms, upper


def lake_error_chart(
    scores: list[LakeScore],
    human_error: float = HUMAN_ERROR,
    title: str = "Error on Lake's 20 one-shot runs (20-way, 1 example each)",
    sort: bool = True,
) -> go.Figure:
    """A bar per model (unmeasured ones left out), 95% CI whiskers where known, a line at people's error.

    Each bar's value is written above its whisker, clear of the people line (`_label_positions`).
    """
    shown = [s for s in scores if s.error is not None]
    if sort:
        shown = sorted(shown, key=lambda s: s.error)
    errors = [100 * s.error for s in shown]
    ci = [100 * (s.ci95 or 0.0) for s in shown]
    many = len(shown) > 6
    height = 440 if many else 360
    margin = dict(l=10, r=110, t=50, b=10)
    plot_px = height - margin["t"] - margin["b"] - X_AXIS_PX[many]
    line = 100 * human_error
    top = max([e + c for e, c in zip(errors, ci)] + [line])
    bottoms, upper = _label_positions([e + c for e, c in zip(errors, ci)], line, top, plot_px)
    fig = go.Figure(
        go.Bar(
            x=[s.name for s in shown],
            y=errors,
            marker_color=[_color(s) for s in shown],
            error_y=dict(type="data", array=ci, visible=any(ci), color="#555", thickness=1.2),
            customdata=[[s.source, s.runs, c] for s, c in zip(shown, ci)],
            hovertemplate="%{x}: %{y:.2f}% error ± %{customdata[2]:.1f} (95% CI over %{customdata[1]} runs)"
            "<br>%{customdata[0]}<extra></extra>",
            showlegend=False,
        )
    )
    for s, bottom in zip(shown, bottoms):
        fig.add_annotation(
            x=s.name,
            y=bottom,
            yanchor="bottom",
            text=f"{error_percent(s.error)}%",
            showarrow=False,
            font=dict(color="#222", size=12),
            name="bar label",
        )
    fig.add_hline(
        y=line,
        line=dict(color=HUMAN_COLOR, dash="dash", width=2),
        annotation_text=f"people: {100 * human_error:.1f}%",
        annotation_position="right",  # in the right margin, clear of every bar
        annotation_font_color=HUMAN_COLOR,
    )
    fig.update_layout(
        title=title,
        height=height,
        margin=margin,
        # Room above the tallest bar for its label; angled names stay legible with 14 models.
        yaxis=dict(title="error (%)", range=[0, upper], ticksuffix="%", rangemode="tozero"),
        xaxis=dict(title="model", tickangle=-35 if many else 0, automargin=True),
    )
    return fig

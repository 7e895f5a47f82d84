"""Plotly figures for the beat-the-human view: errors on Lake's runs beside people's 4.5% (no Streamlit here)."""

from __future__ import annotations

import plotly.graph_objects as go

from playground.data.lake_runs import HUMAN_ERROR
from playground.lake_game import LakeScore, error_percent

MODEL_COLOR = "#4B6BFB"
LIVE_COLOR = "#2E3FA8"  # measured now: darker than a card's figure, so the two are told apart
YOU_COLOR = "#F59E0B"
HUMAN_COLOR = "#D62728"


def _color(s: LakeScore) -> str:
    if s.source == "you":
        return YOU_COLOR
    return LIVE_COLOR if s.source.startswith("measured") else MODEL_COLOR


def lake_error_chart(
    scores: list[LakeScore],
    human_error: float = HUMAN_ERROR,
    title: str = "Error on Lake's 20 one-shot runs (20-way, 1 example each)",
    sort: bool = True,
) -> go.Figure:
    """A bar per model (unmeasured ones left out), 95% CI whiskers where known, a line at people's error."""
    shown = [s for s in scores if s.error is not None]
    if sort:
        shown = sorted(shown, key=lambda s: s.error)
    errors = [100 * s.error for s in shown]
    ci = [100 * (s.ci95 or 0.0) for s in shown]
    fig = go.Figure(
        go.Bar(
            x=[s.name for s in shown],
            y=errors,
            marker_color=[_color(s) for s in shown],
            error_y=dict(type="data", array=ci, visible=any(ci), color="#555", thickness=1.2),
            text=[f"{error_percent(s.error)}%" for s in shown],
            # Inside the bar's top: above it the label would collide with the interval's whisker.
            textposition="inside",
            insidetextanchor="end",
            textfont_color="white",
            customdata=[[s.source, s.runs, c] for s, c in zip(shown, ci)],
            hovertemplate="%{x}: %{y:.2f}% error ± %{customdata[2]:.1f} (95% CI over %{customdata[1]} runs)"
            "<br>%{customdata[0]}<extra></extra>",
            showlegend=False,
        )
    )
    fig.add_hline(
        y=100 * human_error,
        line=dict(color=HUMAN_COLOR, dash="dash", width=2),
        annotation_text=f"people: {100 * human_error:.1f}%",
        annotation_position="right",  # in the right margin, clear of every bar
        annotation_font_color=HUMAN_COLOR,
    )
    top = max([e + c for e, c in zip(errors, ci)] + [100 * human_error])
    many = len(shown) > 6
    fig.update_layout(
        title=title,
        height=440 if many else 360,
        margin=dict(l=10, r=110, t=50, b=10),
        # Room above the tallest bar for its label; angled names stay legible with 14 models.
        yaxis=dict(title="error (%)", range=[0, min(100, top * 1.15 + 2)], ticksuffix="%", rangemode="tozero"),
        xaxis=dict(title="model", tickangle=-35 if many else 0, automargin=True),
        uniformtext=dict(minsize=9, mode="hide"),
    )
    return fig

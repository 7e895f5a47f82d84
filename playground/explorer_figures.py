"""Plotly figures for the embedding explorer and the decision views (no Streamlit here).

Plotly's hover labels cannot hold images, so the glyphs themselves are drawn as small layout
images: on the points of an embedding (optional) and along the axes of a heatmap.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from playground.explain import AdaptationSteps, EmbeddingView
from playground.figures import plot_text

# Colour-blind-friendly qualitative palette (Okabe-Ito, then Tableau's), cycled beyond 17 classes.
PALETTE = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
    "#4E79A7", "#F28E2B", "#59A14F", "#B07AA1", "#76B7B2", "#EDC948", "#9C755F", "#BAB0AC", "#E15759",
]  # fmt: skip
WRONG = "#D62728"
SYMBOL = {"support": "circle", "query": "diamond", "distractor": "circle-open", "prototype": "star"}
SIZE = {"support": 10, "query": 12, "distractor": 6, "prototype": 20}


def class_colour(c: int | None) -> str:
    return "#9E9E9E" if c is None else PALETTE[c % len(PALETTE)]


def image_uri(arr: np.ndarray, colour: str | None = None) -> str:
    """A 28x28 uint8 glyph (ink = 255) as a PNG data URI: dark ink on white, or ink in ``colour``
    on a transparent background."""
    arr = np.asarray(arr, dtype=np.uint8)
    if colour is None:
        img = Image.fromarray(255 - arr)
    else:
        rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
        img = Image.fromarray(np.dstack([np.full_like(arr, v) for v in rgb] + [arr]), "RGBA")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _hover(kind: str, i: int, label: int | None, predicted: int | None, names: list[str]) -> str:
    text = f"{kind} #{i + 1}"
    if label is not None:
        text += f"<br>class: <b>{names[label]}</b>"
    if predicted is not None:
        ok = "" if label is None else (" ✓" if predicted == label else " ✗ wrong")
        text += f"<br>predicted: <b>{names[predicted]}</b>{ok}"
    return text


def _span(coords: np.ndarray) -> float:
    return float(np.ptp(coords, axis=0).max()) if len(coords) > 1 else 1.0


def embedding_figure(view: EmbeddingView, thumbnails: bool = False, title: str = "") -> go.Figure:
    """Points coloured by class; queries as diamonds, prototypes as stars, a dotted line from each
    query to its nearest prototype, wrong predictions ringed in red; optional glyph thumbnails."""
    fig = go.Figure()
    names, xy = [plot_text(n) for n in view.class_names], view.coords
    protos = {view.label[i]: i for i in view.indices("prototype")}
    # Query -> nearest prototype lines first, so the points are drawn on top of them.
    lx, ly = [], []
    for i in view.indices("query"):
        j = protos[view.nearest_prototype[i]]
        lx += [xy[i, 0], xy[j, 0], None]
        ly += [xy[i, 1], xy[j, 1], None]
    if lx:
        fig.add_trace(
            go.Scatter(
                x=lx,
                y=ly,
                mode="lines",
                line=dict(color="#888", width=1, dash="dot"),
                name="query → nearest prototype",
                hoverinfo="skip",
            )
        )
    wrong = set(view.misclassified)
    # One legend entry per class (clicking it hides all that class's points) and a key to the shapes.
    shown: set[int | None] = set()
    for kind in ("distractor", "support", "prototype", "query"):
        of_kind = view.indices(kind)
        for c in sorted({view.label[i] for i in of_kind}, key=lambda v: -1 if v is None else v):
            idx = [i for i in of_kind if view.label[i] == c]
            fig.add_trace(
                go.Scatter(
                    x=xy[idx, 0],
                    y=xy[idx, 1],
                    mode="markers",
                    name="distractors (other characters)" if c is None else names[c],
                    legendgroup=f"class-{c}",
                    showlegend=c not in shown,
                    marker=dict(
                        symbol=SYMBOL[kind],
                        size=SIZE[kind],
                        color=class_colour(c),
                        line=dict(
                            color=[WRONG if i in wrong else "white" for i in idx],
                            width=[3 if i in wrong else 1 for i in idx],
                        ),
                    ),
                    hovertext=[_hover(kind, of_kind.index(i), view.label[i], view.predicted[i], names) for i in idx],
                    hoverinfo="text",
                )
            )
            shown.add(c)
    for kind in ("support", "query", "prototype", "distractor"):
        if view.indices(kind):
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    name=kind,
                    legendgroup="shapes",
                    legendgrouptitle_text="shapes",
                    marker=dict(symbol=SYMBOL[kind], size=10, color="#666"),
                )
            )
    if thumbnails:
        size = 0.07 * _span(xy)
        for i, img in enumerate(view.images):
            if img is not None:
                fig.add_layout_image(
                    source=image_uri(img, class_colour(view.label[i])),
                    x=xy[i, 0],
                    y=xy[i, 1],
                    xref="x",
                    yref="y",
                    sizex=size,
                    sizey=size,
                    xanchor="center",
                    yanchor="middle",
                    opacity=0.9,
                    layer="above",
                )
    n_wrong = len(wrong)
    subtitle = (
        f"{view.note}; {n_wrong} wrong prediction{'s' if n_wrong != 1 else ''} ringed in red" if wrong else view.note
    )
    fig.update_layout(
        title=dict(text=f"{title or view.space}<br><sup>{subtitle}</sup>"),
        height=560,
        margin=dict(l=10, r=10, t=70, b=10),
        xaxis=dict(title="dimension 1", zeroline=False, showticklabels=False),
        yaxis=dict(title="dimension 2", zeroline=False, showticklabels=False, scaleanchor="x"),
        legend=dict(itemsizing="constant", font=dict(size=11)),
        hovermode="closest",
    )
    return fig


def _padded_range(values: np.ndarray) -> list[float]:
    lo, hi = float(values.min()), float(values.max())
    pad = 0.08 * (hi - lo or 1.0)
    return [lo - pad, hi + pad]


def steps_animation(view: AdaptationSteps, class_names: list[str], title: str = "") -> go.Figure:
    """The task's support and query features after each inner step, as plotly frames with a slider."""
    support = [i for i, k in enumerate(view.kind) if k == "support"]
    query = [i for i, k in enumerate(view.kind) if k == "query"]

    class_names = [plot_text(n) for n in class_names]

    def traces(step: int) -> list[go.Scatter]:
        xy = view.coords[step]
        out = []
        for kind, idx in (("support", support), ("query", query)):
            pred = view.query_proba[step].argmax(-1) if kind == "query" else None
            out.append(
                go.Scatter(
                    x=xy[idx, 0],
                    y=xy[idx, 1],
                    mode="markers",
                    name=kind,
                    marker=dict(
                        symbol=SYMBOL[kind],
                        size=SIZE[kind],
                        color=[class_colour(view.label[i]) for i in idx],
                        line=dict(color="white", width=1),
                    ),
                    hovertext=[
                        f"{kind} #{n + 1}"
                        + ("" if view.label[i] is None else f"<br>class: {class_names[view.label[i]]}")
                        + ("" if pred is None else f"<br>predicted: {class_names[int(pred[n])]}")
                        for n, i in enumerate(idx)
                    ],
                    hoverinfo="text",
                )
            )
        return out

    steps = view.steps
    frames = [go.Frame(data=traces(s), name=str(s)) for s in steps]
    fig = go.Figure(data=traces(steps[0]), frames=frames)
    allxy = view.coords.reshape(-1, 2)
    fig.update_layout(
        title=dict(text=f"{title}<br><sup>{view.note}; colours are the true classes</sup>"),
        height=520,
        margin=dict(l=10, r=10, t=70, b=10),
        xaxis=dict(range=_padded_range(allxy[:, 0]), showticklabels=False, title="dimension 1", zeroline=False),
        yaxis=dict(range=_padded_range(allxy[:, 1]), showticklabels=False, title="dimension 2", zeroline=False),
        updatemenus=[
            dict(
                type="buttons",
                showactive=False,
                x=0,
                y=-0.08,
                xanchor="left",
                yanchor="top",
                buttons=[
                    dict(
                        label="▶ play",
                        method="animate",
                        args=[
                            None,
                            dict(
                                frame=dict(duration=700, redraw=True), fromcurrent=False, transition=dict(duration=300)
                            ),
                        ],
                    )
                ],
            )
        ],
        sliders=[
            dict(
                active=0,
                currentvalue=dict(prefix="after inner step "),
                x=0.12,
                len=0.88,
                y=-0.02,
                steps=[
                    dict(
                        label=str(s),
                        method="animate",
                        args=[
                            [str(s)],
                            dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0)),
                        ],
                    )
                    for s in steps
                ],
            )
        ],
    )
    return fig


def probability_steps(view: AdaptationSteps, class_names: list[str], query: int) -> go.Figure:
    """One query's probability for each class after each inner step."""
    fig = go.Figure()
    true = view.label[[i for i, k in enumerate(view.kind) if k == "query"][query]]
    for c, name in enumerate(map(plot_text, class_names)):
        fig.add_trace(
            go.Scatter(
                x=view.steps,
                y=100 * view.query_proba[:, query, c],
                mode="lines+markers",
                name=name + (" (true)" if c == true else ""),
                line=dict(color=class_colour(c), width=4 if c == true else 2),
            )
        )
    fig.update_layout(
        title=f"Query Q{query + 1}: class probabilities after each inner step",
        height=320,
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title="inner step", dtick=1),
        yaxis=dict(title="probability (%)", range=[0, 102]),
    )
    return fig


def decision_heatmap(
    values: np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str,
    unit: str,
    row_images: Sequence[np.ndarray] | None = None,
    col_images: Sequence[np.ndarray] | None = None,
) -> go.Figure:
    """A [rows x columns] matrix as a heatmap, the glyphs drawn along the axes when given."""
    values = np.asarray(values, dtype=float)
    n_rows, n_cols = values.shape
    row_labels, col_labels = [plot_text(r) for r in row_labels], [plot_text(c) for c in col_labels]
    show_text = n_rows * n_cols <= 400
    fmt = ".0%" if unit in ("probability", "attention") else ".3g"
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(range(n_cols)),
            y=list(range(n_rows)),
            colorscale="Blues",
            colorbar=dict(title=unit),
            texttemplate=f"%{{z:{fmt}}}" if show_text else None,
            customdata=[[(r, c) for c in col_labels] for r in row_labels],
            hovertemplate="%{customdata[0]} → %{customdata[1]}<br>" + unit + ": %{z:" + fmt + "}<extra></extra>",
        )
    )
    # Room for the thumbnails: a band below the x axis and left of the y axis.
    for images, axis in ((col_images, "x"), (row_images, "y")):
        for i, img in enumerate(images or []):
            fig.add_layout_image(
                source=image_uri(img),
                x=i if axis == "x" else -1,
                y=-1 if axis == "x" else i,
                xref="x",
                yref="y",
                sizex=0.9,
                sizey=0.9,
                xanchor="center",
                yanchor="middle",
                layer="above",
            )
    fig.update_layout(
        title=title,
        height=max(260, 34 * n_rows + 170),
        margin=dict(l=10, r=10, t=90, b=10),
        xaxis=dict(
            tickvals=list(range(n_cols)),
            ticktext=list(col_labels),
            side="top",
            range=[-0.5 - (1 if row_images else 0), n_cols - 0.5],
            tickangle=-45 if n_cols > 8 else 0,
        ),
        yaxis=dict(
            tickvals=list(range(n_rows)),
            ticktext=list(row_labels),
            autorange=False,
            range=[n_rows - 0.5, -0.5 - (1 if col_images else 0)],
        ),
    )
    return fig


def confusion_figure(counts: np.ndarray, class_names: Sequence[str]) -> go.Figure:
    """Rows are the true classes, columns the predicted ones; the diagonal is right."""
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            x=[plot_text(n) for n in class_names],
            y=[plot_text(n) for n in class_names],
            colorscale="Blues",
            texttemplate="%{z}",
            hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
            colorbar=dict(title="queries"),
        )
    )
    total = int(np.asarray(counts).sum())
    right = int(np.trace(counts))
    fig.update_layout(
        title=f"Confusion matrix: {right} of {total} labelled queries right",
        height=max(260, 30 * len(class_names) + 140),
        margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title="predicted class", side="bottom"),
        yaxis=dict(title="true class", autorange="reversed"),
    )
    return fig

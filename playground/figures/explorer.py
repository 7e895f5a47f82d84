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
from plotly.subplots import make_subplots

from playground.figures.charts import plot_text
from playground.interactive.explain import AdaptationSteps, EmbeddingView

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
    query to its nearest prototype, wrong predictions ringed in red.

    With ``thumbnails`` each image is drawn in place of its marker (in its class's colour, queries
    in a dashed frame, wrong ones in a red circle): a marker at the centre would hide the middle
    strokes of the glyph it stands for. The markers stay, transparent, for their hover text.
    """
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
        hidden = thumbnails and kind != "prototype"  # prototypes have no image: their stars stay
        for c in sorted({view.label[i] for i in of_kind}, key=lambda v: -1 if v is None else v):
            idx = [i for i in of_kind if view.label[i] == c]
            fig.add_trace(
                go.Scatter(
                    x=xy[idx, 0],
                    y=xy[idx, 1],
                    mode="markers",
                    name="distractors (other characters)" if c is None else names[c],
                    legendgroup=f"class-{c}",
                    showlegend=not hidden and c not in shown,
                    marker=dict(
                        symbol=SYMBOL[kind],
                        size=SIZE[kind],
                        color=class_colour(c),
                        opacity=0 if hidden else (0.75 if thumbnails else 1),
                        line=dict(
                            color=[WRONG if i in wrong else "white" for i in idx],
                            width=[3 if i in wrong else 1 for i in idx],
                        ),
                    ),
                    hovertext=[_hover(kind, of_kind.index(i), view.label[i], view.predicted[i], names) for i in idx],
                    hoverinfo="text",
                )
            )
            if not hidden:
                shown.add(c)
    if None in {view.label[i] for i in view.indices("distractor")} - shown:  # their markers are hidden
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name="distractors (other characters)",
                legendgroup="class-None",
                marker=dict(symbol=SYMBOL["distractor"], size=10, color=class_colour(None)),
            )
        )
    # With the glyphs drawn, support images and queries are told apart by the frame, not a shape.
    key = {"support": "its glyph", "query": "glyph in a dashed frame", "distractor": "grey glyph"} if thumbnails else {}
    for kind in ("support", "query", "prototype", "distractor"):
        if view.indices(kind):
            symbol = "square-open" if kind == "query" and thumbnails else SYMBOL[kind]
            fig.add_trace(
                go.Scatter(
                    x=[None],
                    y=[None],
                    mode="markers",
                    name=f"{kind}: {key[kind]}" if kind in key else kind,
                    legendgroup="shapes",
                    legendgrouptitle_text="shapes",
                    marker=dict(symbol=symbol, size=10, color="#666"),
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
                    layer="above",
                )
        # Shapes in data units, so they stay around their glyph when zooming, as the glyphs do.
        half = 0.55 * size
        for i in view.indices("query"):
            fig.add_shape(
                type="rect",
                x0=xy[i, 0] - half,
                x1=xy[i, 0] + half,
                y0=xy[i, 1] - half,
                y1=xy[i, 1] + half,
                line=dict(color=class_colour(view.label[i]), width=1, dash="dash"),
                layer="above",
            )
        for i in wrong:
            fig.add_shape(
                type="circle",
                x0=xy[i, 0] - 1.5 * half,
                x1=xy[i, 0] + 1.5 * half,
                y0=xy[i, 1] - 1.5 * half,
                y1=xy[i, 1] + 1.5 * half,
                line=dict(color=WRONG, width=3),
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


def _steps_status(view: AdaptationSteps, step: int) -> str:
    """What is right after ``step`` inner steps, in words (the subtitle of that frame)."""
    wrong, predicted = set(view.wrong(step)), view.predicted(step)
    parts = []
    for kind, noun in (("query", "queries"), ("support", "support images")):
        labelled = [i for i, (k, y) in enumerate(zip(view.kind, view.label)) if k == kind and y is not None]
        if labelled:
            parts.append(f"{len(labelled) - len(wrong.intersection(labelled))} of {len(labelled)} {noun} right")
    undecided = sum(p is None for p in predicted)
    if undecided:
        parts.append(f"{undecided} with no preference yet")
    return f"after inner step {step}: " + ", ".join(parts)


MAX_BARS = 40  # rows of probability bars; beyond this they are too thin to read


def steps_animation(view: AdaptationSteps, class_names: list[str], title: str = "") -> go.Figure:
    """The task after each inner step, as plotly frames with a slider and a play button.

    Left, the support and query features (one projection for every step). Adapting often changes
    how a model's last layer reads its features far more than the features themselves, so the
    points may hardly move: what changes visibly is each point's fill, the class the model gives it
    after that step (grey while it prefers none), and a red ring where that is not its class.
    Right, each query's class probabilities as one stacked bar (the support images' when there
    are no queries), going from an even split to one colour as the model makes up its mind.
    """
    names = [plot_text(n) for n in class_names]
    n_way = view.query_proba.shape[-1]
    support = [i for i, k in enumerate(view.kind) if k == "support"]
    query = [i for i, k in enumerate(view.kind) if k == "query"]
    tags = {i: f"S{n + 1}" for n, i in enumerate(support)} | {i: f"Q{n + 1}" for n, i in enumerate(query)}
    rows = (query or support)[:MAX_BARS]
    row_kind = "queries" if query else "support images"
    more = f" (the first {MAX_BARS})" if len(query or support) > MAX_BARS else ""

    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.6, 0.4],
        horizontal_spacing=0.1,
        subplot_titles=(
            "each image, filled with the class it is given now",
            f"class probabilities of the {row_kind}{more}",
        ),
    )

    def frame_data(step: int) -> list[go.BaseTraceType]:
        xy, predicted, wrong = view.coords[step], view.predicted(step), set(view.wrong(step))
        proba = view.proba(step)
        out: list[go.BaseTraceType] = []
        for kind, idx in (("support", support), ("query", query)):
            labelled = kind == "query" and len(idx) <= MAX_BARS  # name the queries so a bar finds its point
            out.append(
                go.Scatter(
                    x=xy[idx, 0],
                    y=xy[idx, 1],
                    mode="markers+text" if labelled else "markers",
                    text=[tags[i] for i in idx] if labelled else None,
                    textposition="top center",
                    textfont=dict(size=10, color="#555"),
                    name=kind,
                    showlegend=False,
                    marker=dict(
                        symbol=SYMBOL[kind],
                        size=SIZE[kind] + 3,
                        color=[class_colour(predicted[i]) for i in idx],
                        line=dict(
                            color=[WRONG if i in wrong else "white" for i in idx],
                            width=[3 if i in wrong else 1 for i in idx],
                        ),
                    ),
                    hovertext=[
                        f"{tags[i]} ({kind})"
                        + ("" if view.label[i] is None else f"<br>class: <b>{names[view.label[i]]}</b>")
                        + (
                            "<br>no preference yet: every class about as likely"
                            if predicted[i] is None
                            else f"<br>predicted now: <b>{names[predicted[i]]}</b> ({proba[i, predicted[i]]:.0%})"
                            + ("" if view.label[i] is None else (" ✓" if i not in wrong else " ✗ wrong"))
                        )
                        for i in idx
                    ],
                    hoverinfo="text",
                ),
            )
        true = [view.label[i] for i in rows]
        for c in range(n_way):
            out.append(
                go.Bar(
                    x=100 * proba[rows, c],
                    y=[tags[i] for i in rows],
                    orientation="h",
                    name=names[c],
                    legendgroup=f"class-{c}",
                    marker=dict(color=class_colour(c), line=dict(color="white", width=0.5)),
                    customdata=["" if t is None else f" (true: {names[t]})" for t in true],
                    hovertemplate="%{y}%{customdata}<br>" + names[c] + ": %{x:.0f}%<extra></extra>",
                    xaxis="x2",
                    yaxis="y2",
                )
            )
        return out

    def frame_title(step: int) -> dict:
        # A frame's title replaces the whole title object, the font Streamlit's theme gave it too:
        # bold and left-aligned here, so every step looks like the first.
        return dict(text=f"<b>{title}</b><br><sup>{_steps_status(view, step)}</sup>", x=0, xanchor="left")

    steps = view.steps
    for trace in frame_data(steps[0]):
        fig.add_trace(trace, row=1, col=1 if isinstance(trace, go.Scatter) else 2)
    animated = list(range(len(fig.data)))
    # A key to the shapes and the marks (legend only), after the class entries the bars give.
    key = [
        ("support", dict(symbol="circle-open", color="#444", size=10, line=dict(width=2))),
        ("query", dict(symbol="diamond-open", color="#444", size=11, line=dict(width=2))),
        ("no preference yet", dict(symbol="circle", color=class_colour(None), size=10)),
        ("wrong (red ring)", dict(symbol="circle", color="white", size=10, line=dict(color=WRONG, width=3))),
    ]
    for label, marker in key:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=label, marker=marker), row=1, col=1)
    fig.frames = [
        go.Frame(data=frame_data(s), traces=animated, name=str(s), layout=dict(title=frame_title(s))) for s in steps
    ]
    allxy = view.coords.reshape(-1, 2)
    fig.update_layout(
        title=frame_title(steps[0]),
        height=max(580, 22 * len(rows) + 260),
        margin=dict(l=10, r=10, t=110, b=110),
        barmode="stack",
        bargap=0.25,
        legend=dict(font=dict(size=11), itemsizing="constant"),
        hovermode="closest",
        updatemenus=[
            dict(
                type="buttons",
                showactive=False,
                x=0,
                y=-0.16,
                xanchor="left",
                yanchor="top",
                buttons=[
                    dict(
                        label="▶ play",
                        method="animate",
                        args=[
                            None,
                            dict(
                                frame=dict(duration=900, redraw=True), fromcurrent=False, transition=dict(duration=300)
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
                x=0.1,
                len=0.9,
                y=-0.14,
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
    fig.update_xaxes(
        range=_padded_range(allxy[:, 0]),
        showticklabels=False,
        title=dict(text=plot_text(view.note), font=dict(size=11)),
        zeroline=False,
        row=1,
        col=1,
    )
    fig.update_yaxes(
        range=_padded_range(allxy[:, 1]), showticklabels=False, zeroline=False, scaleanchor=None, row=1, col=1
    )
    fig.update_xaxes(range=[0, 100], title=dict(text="probability (%)", font=dict(size=11)), row=1, col=2)
    fig.update_annotations(font_size=13)  # the subplot titles, under the figure's own
    fig.update_yaxes(autorange="reversed", row=1, col=2)
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
    near = "distance" in unit
    fmt = ".0%" if unit in ("probability", "attention") else ".3g"
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=list(range(n_cols)),
            y=list(range(n_rows)),
            colorscale="Blues",
            # Dark means "this is the one" in every matrix: the likeliest class, the most attended
            # image, and so the smallest distance, which is what makes a class likely.
            reversescale=near,
            colorbar=dict(title=f"{unit}<br>(near = dark)" if near else unit),
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

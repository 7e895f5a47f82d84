"""Beat the human: a run of Lake's one-shot test to try, then the chosen models' error beside people's 4.5%."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from playground.data.omniglot import DataError
from playground.figures.lake import lake_error_chart
from playground.lake.game import (
    DRAWING,
    RIGHT_GLYPH,
    LakeScore,
    RunPicks,
    best_card_score,
    compare,
    error_percent,
    item_rows,
    lake_runs_available,
    measure_model,
    missing_runs_message,
    overview_scores,
    pick_column,
    run_glyph_uris,
    run_images,
    run_picks,
    score_attempt,
)
from playground.lake.runs import HUMAN_ERROR, RUNS, LakeRun
from playground.ui.data import offer_download
from playground.ui.display import thumbnail
from playground.ui.resources import chosen_models, current_device, get_model, load_lake_runs_cached, model_catalogue
from playground.ui.session import guarded, show_flash, state

GRID = 10  # training glyphs per row: two rows of ten
GLYPH_PX = 56  # a training glyph's size on its button: twice the 28-pixel drawing, big enough to compare strokes
ROW_PX = 44  # the item-by-item table's row height: its glyphs a little larger than the drawings
GLYPH_COLUMN_PX = 56  # an image column of that table: the glyph and a margin, so that every column fits
# A button's label may hold a Markdown image, but Streamlit draws it at the text's height, like an icon.
# These rules draw the glyph at full size above its number, so the glyph itself is what a person clicks.
GLYPH_BUTTON_CSS = f"""<style>
div[class*="st-key-lake_pick_"] button {{padding: 4px 2px !important; min-width: 0;}}
div[class*="st-key-lake_pick_"] button div, div[class*="st-key-lake_pick_"] button span {{width: 100%;}}
div[class*="st-key-lake_pick_"] button p {{
  display: flex; flex-direction: column; align-items: center; gap: 2px; width: 100%;
}}
div[class*="st-key-lake_pick_"] button img {{
  width: 100% !important; max-width: {GLYPH_PX}px; height: auto !important; max-height: none !important;
  aspect-ratio: 1;
}}
</style>"""

ss = state()
# This page's state, all prefixed lake_: plain keys (not widget keys), so a person's answers survive
# switching runs and pages, which drop the values of widgets that are not drawn.
for key, default in (
    ("lake_answers", {}),  # run index -> 20 picks (training glyph index or None)
    ("lake_cursor", {}),  # run index -> the test item on show
    ("lake_status", {}),  # run index -> "submitted" | "revealed"
    ("lake_measured", {}),  # model name -> LakeMeasurement
    ("lake_run", 0),
):
    if key not in ss:
        ss[key] = default


@st.cache_data(show_spinner=False, max_entries=1000)
def model_run_picks(name: str, run: int, device: str) -> RunPicks:
    """One model's picks on one run (with its card's Lake steps and rate); the same for every visitor."""
    return run_picks(get_model(name, device), load_lake_runs_cached()[run])


@st.cache_data(show_spinner=False, max_entries=RUNS)
def glyph_uris(run: int) -> tuple[list[str], list[str]]:
    """One run's glyphs as data URIs, for the buttons and the item table (encoded once per run)."""
    return run_glyph_uris(load_lake_runs_cached()[run])


st.title(":material/person: Beat the human")
show_flash()
st.write(
    "Lake et al. (2015) gave people 20 one-shot runs: each shows 20 characters from one alphabet, one drawing "
    f"each, and 20 new drawings to match to them. People got **{100 * HUMAN_ERROR:.1f}%** of the matches wrong. "
    "Try a run yourself, then see the models on the same runs."
)

device = current_device()
names = chosen_models()
entries = model_catalogue()
problem = None if lake_runs_available() else missing_runs_message()
if problem is None:
    try:
        load_lake_runs_cached()
    except DataError as exc:  # a damaged zip: say which, never a traceback
        problem = str(exc)


def overview() -> None:
    """The chosen models' error on all 20 runs, from their cards or measured now, against people's."""
    st.subheader("The models against people")
    if not names:
        st.warning("Choose at least one model in the sidebar.")
        return
    if st.button(
        "Measure now",
        icon=":material/speed:",
        key="lake_measure",
        disabled=problem is not None,
        help="Run the chosen models on all 20 runs here, instead of reading the figure from their model cards.",
    ):
        bar = st.progress(0.0, text="Measuring…")

        def _measure() -> None:
            runs = load_lake_runs_cached()
            for k, name in enumerate(names):

                def step(done: int, total: int, k: int = k, name: str = name) -> None:
                    bar.progress((k + done / total) / len(names), text=f"{name}: run {done} of {total}")

                model = get_model(name, device)  # with its card: it measures as the card's figure was measured
                ss.lake_measured[name] = measure_model(name, model, runs, progress=step)

        guarded(_measure, "Measuring on Lake's runs")
        bar.empty()
        show_flash()

    shown = list(names)
    best = best_card_score({n: e.card for n, e in entries.items()})
    if best is not None and best.name not in names:
        # The headline of this page is whether any model matches people; say so even when the sidebar's
        # choice leaves that model out. Its card figure is free: nothing is loaded or run for it.
        st.info(
            f"The best shipped model on these runs is **{best.name}**: {error_percent(best.error)}% errors from its "
            f"model card, {best.against_people} people's {100 * HUMAN_ERROR:.1f}%. "
            "It is not among the models chosen in the sidebar.",
            icon=":material/emoji_events:",
        )
        if st.toggle(f"Show {best.name} here too (its model card's figure)", key="lake_show_best"):
            shown.append(best.name)
    scores = overview_scores({n: entries[n].card for n in shown}, ss.lake_measured)
    st.plotly_chart(lake_error_chart(scores), key="lake_overview_chart")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "model": s.name,
                    "error (%)": None if s.error is None else round(100 * s.error, 2),
                    "± 95% CI": None if s.ci95 is None else round(100 * s.ci95, 1),
                    "× people's error": None if s.times_people is None else round(s.times_people, 2),
                    "source": s.source,
                }
                for s in scores
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.caption(
        f"The dashed line is people's {100 * HUMAN_ERROR:.1f}%. The interval is over the 20 runs' errors. "
        "Model-card figures were measured when the model was shipped; **Measure now** repeats it on "
        f"{device}."
    )
    if problem is not None:
        st.caption("Measuring needs Lake's runs, which are not installed here (see above).")


def play() -> None:
    """One run to try: pick a training glyph for each test drawing, then see the key and the models' picks."""
    runs = load_lake_runs_cached()
    st.selectbox(
        "Run",
        list(range(RUNS)),
        index=ss.lake_run,
        format_func=lambda r: f"Run {r + 1} of {RUNS}",
        key="lake_run_widget",
        on_change=lambda: ss.update(lake_run=ss.lake_run_widget),
    )
    r = ss.lake_run
    run = runs[r]
    train_imgs, test_imgs = run_images(run)
    n = len(test_imgs)
    answers: list[int | None] = ss.lake_answers.setdefault(r, [None] * n)
    if ss.lake_status.get(r) is None:
        answer_run(r, train_imgs, test_imgs, answers)
    else:
        run_results(r, run, train_imgs, test_imgs, answers)


def answer_run(r: int, train_imgs: np.ndarray, test_imgs: np.ndarray, answers: list[int | None]) -> None:
    """The game itself: one test drawing at a time, the 20 training glyphs to click."""
    n = len(test_imgs)
    cursor = ss.lake_cursor.get(r, 0)
    train_uris, _ = glyph_uris(r)

    def pick(item: int, glyph: int | None) -> None:
        """Record a pick (None clears it), then move to the next unanswered item, if any."""
        answers[item] = glyph
        if glyph is None:
            return
        later = [i for i in list(range(item + 1, n)) + list(range(item)) if answers[i] is None]
        ss.lake_cursor[r] = later[0] if later else item

    def go(item: int) -> None:
        ss.lake_cursor[r] = item % n

    st.write(
        "Each test drawing below is the same character as exactly one of the 20 drawings on the right. "
        "Click the one you think it is. The answer key stays hidden until you submit."
    )
    answered = sum(a is not None for a in answers)
    st.progress(answered / n, text=f"{answered} of {n} answered")
    # Pills keep all 20 item numbers legible on one line; seeded from the plain state each run,
    # because the cursor also moves by picking and by the arrows.
    ss.lake_goto = cursor
    st.pills(
        "Test items (✓ answered)",
        list(range(n)),
        format_func=lambda i: f"{i + 1}" + (" ✓" if answers[i] is not None else ""),
        key="lake_goto",
        required=True,
        on_change=lambda: go(ss.lake_goto),
    )
    st.html(GLYPH_BUTTON_CSS)
    left, right = st.columns([1, 4])
    with left:
        st.markdown(f"**Test item {cursor + 1} of {n}**")
        st.image(thumbnail(test_imgs[cursor]), width=120, alt=f"test item {cursor + 1}")
        st.caption("your pick: " + ("none yet" if answers[cursor] is None else f"**{answers[cursor] + 1}**"))
        b1, b2 = st.columns(2)
        b1.button("◀", key="lake_prev", on_click=go, args=(cursor - 1,), help="previous item")
        b2.button("▶", key="lake_next", on_click=go, args=(cursor + 1,), help="next item")
        st.button(
            "Clear this answer",
            key="lake_clear",
            disabled=answers[cursor] is None,
            on_click=pick,
            args=(cursor, None),
        )
    with right:
        st.markdown("**Which of these is the same character?** Click it.")
        for start in range(0, len(train_imgs), GRID):
            for j, col in zip(range(start, min(start + GRID, len(train_imgs))), st.columns(GRID)):
                # The glyph is the button's label: its alt text and number name it to a screen reader.
                col.button(
                    f"![glyph]({train_uris[j]}) {j + 1}",
                    key=f"lake_pick_{j}",
                    type="primary" if answers[cursor] == j else "secondary",
                    on_click=pick,
                    args=(cursor, j),
                    width="stretch",
                )
    c1, c2 = st.columns(2)
    c1.button(
        "Submit my answers",
        type="primary",
        key="lake_submit",
        disabled=answered == 0,
        on_click=lambda: ss.lake_status.__setitem__(r, "submitted"),
    )
    c2.button(
        "Reveal the answers",
        key="lake_reveal",
        on_click=lambda: ss.lake_status.__setitem__(r, "revealed"),
        help="Show the answer key and the models' picks without scoring you first.",
    )
    if answered < n:
        st.caption(f"{n - answered} unanswered: they are left out of your error, not counted wrong.")


def run_results(r: int, run: LakeRun, train_imgs: np.ndarray, test_imgs: np.ndarray, answers: list[int | None]) -> None:
    """A submitted or revealed run: your error, the models', and every item with its glyphs."""
    n = len(test_imgs)

    def again() -> None:
        ss.lake_answers[r] = [None] * n
        ss.lake_cursor[r] = 0
        ss.lake_status.pop(r, None)

    attempt = score_attempt(run, answers)
    models: dict[str, RunPicks] = {}
    for name in names:

        def _picks(name: str = name) -> None:
            models[name] = model_run_picks(name, r, device)

        guarded(_picks, f"{name} on run {r + 1}")
    show_flash()

    if ss.lake_status.get(r) == "revealed":
        st.info("You revealed the answer key for this run.")
    m1, m2, m3 = st.columns(3)
    if attempt.error_rate is None:
        m1.metric("Your error", "—", help="you answered no item of this run")
    else:
        m1.metric(
            "Your error",
            f"{100 * attempt.error_rate:.1f}%",
            help=f"{attempt.errors} wrong of {attempt.answered} answered",
        )
        m1.caption(f"{attempt.errors} wrong of {attempt.answered} answered ({attempt.unanswered} unanswered)")
    m2.metric("People (Lake et al.)", f"{100 * HUMAN_ERROR:.1f}%", help="over all 20 runs")
    if models:
        best = min(models, key=lambda k: models[k].error)
        m3.metric("Best model on this run", f"{100 * models[best].error:.1f}%", help=best)
        m3.caption(best)

    bars = [attempt.score()] if attempt.error_rate is not None else []
    bars += [LakeScore(k, v.error, None, "this run", 1) for k, v in models.items()]
    st.plotly_chart(
        lake_error_chart(bars, title=f"Run {r + 1}: you and the models (line: people's error over all runs)"),
        key="lake_run_chart",
    )
    if models and attempt.answered:
        st.markdown("**You against each model**, on the items you answered")
        st.dataframe(
            pd.DataFrame([c.row() for c in compare(attempt, models)]),
            hide_index=True,
            width="stretch",
        )
    st.markdown(
        "**Item by item**: the test drawings, the right glyphs, and every pick beside its number (models: with "
        "confidence)"
    )
    # Each glyph sits just left of the number or mark it pictures, under no header of its own: the name over
    # the number names both, and a header per glyph would not fit a 56-pixel column.
    about = {RIGHT_GLYPH: "the right training glyph", pick_column("you"): "the glyph you picked"}
    about |= {pick_column(m): f"the glyph {m} picked" for m in models}
    images = {c: st.column_config.ImageColumn(" ", width=GLYPH_COLUMN_PX, help=about[c]) for c in about}
    images[DRAWING] = st.column_config.ImageColumn(DRAWING, width=GLYPH_COLUMN_PX, help="the test drawing")
    # Tall enough for all 20 rows: the table is the answer key, scrolling it would hide half of it.
    st.dataframe(
        pd.DataFrame(item_rows(attempt, models, glyph_uris(r))),
        hide_index=True,
        width="stretch",
        row_height=ROW_PX,
        height=ROW_PX * n + 38,
        column_config=images,
        placeholder="—",  # an unanswered item's pick: the same dash as its mark
    )

    wrong = [i for i, ok in enumerate(attempt.right) if ok is False]
    if wrong:
        with st.expander(f"Your {len(wrong)} mistake{'s' if len(wrong) > 1 else ''}", expanded=True):
            for i in wrong:
                c = st.columns([1, 1, 1, 3])
                c[0].image(thumbnail(test_imgs[i]), width=70, caption=f"item {i + 1}")
                c[1].image(
                    thumbnail(train_imgs[int(run.test_y[i])]), width=70, caption=f"answer: {int(run.test_y[i]) + 1}"
                )
                c[2].image(thumbnail(train_imgs[answers[i]]), width=70, caption=f"you: {answers[i] + 1}")
    st.button("Try this run again", key="lake_again", on_click=again, icon=":material/restart_alt:")


# The game comes first: a newcomer plays before reading how the models did, and the overview below
# then answers the question the game raises.
st.subheader("Your turn")
if not lake_runs_available():
    offer_download("The game plays Lake's 20 runs, which are not installed here.", key="download")
elif problem is not None:
    st.warning(problem)
else:
    play()
overview()

"""Page: every chosen model side by side, on your task and on the same benchmark episodes."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from playground.data.protocols import evaluation_alphabet_dataset
from playground.evaluation.compare import (
    BENCHMARK_EPISODES,
    CURVE_EPISODES,
    CURVE_STEPS,
    MAX_WORK_PER_CLICK,
    Stopped,
    accuracy_text,
    benchmark_turn,
    benchmark_work,
    compare_on_benchmark,
    curves_work,
    few_episodes_note,
    few_queries_note,
    score_on_task,
    shot_curve,
    step_curve,
)
from playground.evaluation.pace import about
from playground.figures.charts import accuracy_curves, model_colours, score_bars
from playground.interactive.explain import steps_option
from playground.ui.data import offer_download
from playground.ui.display import plain
from playground.ui.resources import current_device, load_models, load_omniglot_cached, model_catalogue, omniglot_present
from playground.ui.session import attempt, client_gone, digest, require_task, show_flash, state
from playground.zoo.shipped import default_selection

ss = state()
st.title(":material/balance: Compare models")
st.caption(
    "The same task for every model: who gets it right, how fast, and how sure we can be. Benchmark "
    "figures come with a 95% confidence interval over episodes that are identical for every model."
)
show_flash()
support_x, support_y, names, query_x, query_labels = require_task()
device = current_device()
all_names = list(model_catalogue())
models = load_models(device)
c1, c2 = st.columns([3, 1])
c1.markdown(f"Comparing **{len(models)}** model(s), chosen in the sidebar: {', '.join(models) or 'none'}.")


def choose_all() -> None:
    # In a callback: it runs before the sidebar's widget is drawn again, so its value may change.
    ss.model_choice = ss.model_choice_widget = all_names


c2.button("Compare all shipped models", key="compare_all", disabled=len(models) == len(all_names), on_click=choose_all)
if not models:
    st.warning("Choose at least one model in the sidebar.")
    st.stop()
learners = {n: learner for n, (_, learner) in models.items()}
# A model's colour is its place in the catalogue, the default models first: the same in every chart of the page,
# and kept when other models are chosen.
defaults = default_selection(all_names)
colours = model_colours(defaults + [n for n in all_names if n not in defaults])
n_way = len(names)
k_shot = min(int(c) for c in support_y.bincount())

# -- 1. on the user's task ------------------------------------------------------------------------------
st.subheader("1. On your task")
labelled = [i for i, label in enumerate(query_labels) if label is not None]
task_key = digest(support_x, support_y, query_x, query_labels, sorted(learners), device)
if labelled:
    st.caption(
        f"Accuracy on your {len(labelled)} labelled queries; times measured on {device}. "
        + few_queries_note(len(labelled))
    )
elif k_shot >= 2:
    st.caption(
        "No labelled queries, so each model is scored by leave-one-out: every support image in turn is "
        "held out, the model adapts to the rest and classifies it. " + few_queries_note(len(support_y))
    )
else:
    st.info(
        "Nothing to score yet: give queries their true class on **Adapt and predict**, or give every "
        "class at least 2 examples (then leave-one-out can score the support set itself)."
    )

if (labelled or k_shot >= 2) and st.button("Compare on my task", type="primary", key="compare_task"):
    bar = st.progress(0.0, text="Adapting…")

    def run_task() -> list[dict]:
        def tick(done: int, total: int, name: str) -> None:
            bar.progress(done / total, text=f"{name} done")

        scores = score_on_task(learners, support_x, support_y, query_x, query_labels, tick)
        return [score.row() for score in scores]

    rows = attempt(run_task, "Comparing on your task")
    bar.empty()
    if rows is not None:
        ss.compare_task_result = {"key": task_key, "rows": rows}

result = ss.get("compare_task_result")
if result and result["key"] == task_key:
    table = pd.DataFrame(result["rows"])
    scored = table[table["accuracy"].notna()]
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "accuracy": st.column_config.NumberColumn(format="percent"),
            "adapt (ms)": st.column_config.NumberColumn(format="%.1f"),
            "predict (ms)": st.column_config.NumberColumn(format="%.1f"),
        },
    )
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        score_bars(
            list(scored["model"]), list(scored["accuracy"]), "Accuracy on your task", "accuracy (%)", colours=colours
        ),
        key="compare_task_accuracy",
    )
    c2.plotly_chart(
        score_bars(
            list(table["model"]),
            list(table["adapt (ms)"]),
            "Time to adapt",
            "milliseconds",
            percent=False,
            colours=colours,
        ),
        key="compare_task_time",
    )
elif result:
    st.info("The task, queries or models changed: click **Compare on my task** again.")

# -- 2. on benchmark episodes -----------------------------------------------------------------------------
st.subheader("2. On benchmark episodes")
if not omniglot_present():
    offer_download("The benchmark episodes are sampled from Omniglot, which is not installed here.", key="download")
    st.stop()
st.caption(
    "Episodes sampled from Omniglot's evaluation alphabets (characters no model was trained on), the "
    "same episodes for every model, 5 queries per class. Gradient-based models adapt with the inner steps and "
    "step size their model card was measured with at the nearest task size, so the card column is comparable."
)
c1, c2, c3 = st.columns(3)
bench_way = c1.number_input("Classes (N)", 2, 20, min(max(n_way, 2), 20), key="compare_way")
bench_shot = c2.number_input("Shots (K)", 1, 5, min(max(k_shot, 1), 5), key="compare_shot")
# gradient-based models adapt as their card's figure nearest this task size was measured
bench_settings = {name: model_catalogue()[name].adapt_defaults(int(bench_way), int(bench_shot)) for name in learners}
# The default asks for no more than one click may start with these models and this task size.
fitting = benchmark_work(learners, int(bench_way), int(bench_shot), 1, bench_settings).most_episodes()
episodes = c3.slider(
    "Episodes",
    10,
    600,
    max(10, min(BENCHMARK_EPISODES, fitting)),
    step=10,
    key="compare_episodes",
    persist_state="session",
)
bench_key = digest(sorted(learners), bench_way, bench_shot, episodes, device)
bench_work = benchmark_work(learners, int(bench_way), int(bench_shot), episodes, bench_settings)
WORK_NOTE = (
    "An image pass is one image through one model; each inner step of a gradient-based model adds two "
    "per example. One benchmark runs at a time on this server."
)
if bench_work.fits:
    st.caption(f"This run: {bench_work.summary()}. {WORK_NOTE}")
else:
    st.warning(bench_work.refusal())
    st.caption(WORK_NOTE)


def paragraphs(text: str) -> str:
    """The library's plain-text paragraphs as literal markdown, still paragraphs (`plain` joins lines)."""
    return "\n\n".join(plain(p) for p in text.split("\n\n"))


@st.cache_resource(show_spinner="Preparing the evaluation alphabets…")
def evaluation_set(device: str):
    return evaluation_alphabet_dataset(load_omniglot_cached()).to(device)


def in_turn(compute, what: str):
    """``compute(should_stop)`` in the server's one benchmark turn, waiting for it with a message if another
    visitor holds it; as `attempt`, but when this visitor leaves the work stops and nothing is said."""
    gone = client_gone()
    waiting = st.empty()

    def run():
        try:
            wait = "Another visitor's benchmark is running: yours starts as soon as it ends."
            with benchmark_turn(gone, on_wait=lambda: waiting.info(wait)):
                waiting.empty()
                return compute(gone)
        except Stopped:
            st.stop()  # the browser has gone: there is no one to show anything to

    return attempt(run, what)


if st.button("Run the benchmark", type="primary", key="compare_bench", disabled=not bench_work.fits):
    bar = st.progress(0.0, text="Scoring…" if bench_work.seconds is None else f"Scoring, {about(bench_work.seconds)}…")
    rows = in_turn(
        lambda should_stop: compare_on_benchmark(
            learners,
            evaluation_set(device),
            int(bench_way),
            int(bench_shot),
            episodes,
            settings=bench_settings,
            progress=lambda done, total: bar.progress(done / total, text=f"{done} of {total} model-episodes"),
            should_stop=should_stop,
            max_work=MAX_WORK_PER_CLICK,
        ),
        "The benchmark",
    )
    bar.empty()
    if rows is not None:
        ss.compare_bench_result = {"key": bench_key, "rows": rows}

bench = ss.get("compare_bench_result")
if bench and bench["key"] == bench_key:
    rows = bench["rows"]
    note = few_episodes_note({r.model: [r.result] for r in rows}, "Episodes", most=bench_work.most_episodes())
    if note:
        st.info(paragraphs(note), icon=":material/info:")
    st.plotly_chart(
        score_bars(
            [r.model for r in rows],
            [r.result.mean for r in rows],
            f"{bench_way}-way {bench_shot}-shot, {episodes} episodes: accuracy with 95% CI",
            "accuracy (%)",
            errors=[r.result.ci95 for r in rows],
            colours=colours,
        ),
        key="compare_bench_chart",
    )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "model": r.model,
                    "accuracy": accuracy_text(r.result),
                    "episodes": r.result.episodes,
                    "seconds": round(r.seconds, 2),
                    "card (600 episodes)": model_catalogue()[r.model].headline(int(bench_way), int(bench_shot)) or "–",
                }
                for r in rows
            ]
        ),
        hide_index=True,
        width="stretch",
    )
elif bench:
    st.info("The settings or models changed: click **Run the benchmark** again.")

# -- 3. curves ----------------------------------------------------------------------------------------------
st.subheader("3. Curves")
c1, c2 = st.columns(2)
curve_episodes = c1.slider(
    "Episodes per point", 10, 200, CURVE_EPISODES, step=10, key="compare_curve_episodes", persist_state="session"
)
gradient = [n for n, learner in learners.items() if steps_option(learner) is not None]
max_steps = c2.slider(
    "Inner steps up to", 1, 20, CURVE_STEPS, key="compare_curve_steps", persist_state="session", disabled=not gradient
)


def card_settings(name: str, shots: int) -> dict[str, float]:
    # each point adapts as the model's card figure nearest that task size was measured, as the benchmark does
    return model_catalogue()[name].adapt_defaults(int(bench_way), shots)


curve_work = curves_work(learners, int(bench_way), int(bench_shot), curve_episodes, max_steps, settings=card_settings)
if curve_work.fits:
    st.caption(f"These curves: {curve_work.summary()}.")
else:
    st.warning(curve_work.refusal("episodes per point"))
if st.button("Draw the curves", key="compare_curves", disabled=not curve_work.fits):
    dataset = evaluation_set(device)
    bar = st.progress(0.0, text="Accuracy against shots…")
    total = len(learners) + len(gradient)

    def run_curves(should_stop) -> dict:
        shots, steps = {}, {}
        for i, (name, learner) in enumerate(learners.items()):
            res = shot_curve(
                learner,
                dataset,
                int(bench_way),
                (1, 2, 3, 4, 5),
                curve_episodes,
                should_stop=should_stop,
                settings=lambda k, name=name: card_settings(name, k),
            )
            shots[name] = ([1, 2, 3, 4, 5], [r.mean for r in res], [r.ci95 for r in res], res)
            bar.progress((i + 1) / total, text=f"shots: {name}")
        for j, name in enumerate(gradient):
            learner = learners[name]
            counts = list(range(0, min(max_steps, steps_option(learner)) + 1))
            res = step_curve(
                learner, dataset, int(bench_way), int(bench_shot), counts, curve_episodes, should_stop=should_stop
            )
            steps[name] = (counts, [r.mean for r in res], [r.ci95 for r in res], res)
            bar.progress((len(learners) + j + 1) / total, text=f"inner steps: {name}")
        return {"shots": shots, "steps": steps}

    curves = in_turn(run_curves, "The curves")
    bar.empty()
    if curves is not None:
        ss.compare_curves_result = {"key": digest(bench_key, curve_episodes, max_steps), **curves}

curves = ss.get("compare_curves_result")
if curves and curves["key"] == digest(bench_key, curve_episodes, max_steps):
    results = {
        name: [*shot[3], *curves["steps"].get(name, ((), (), (), ()))[3]] for name, shot in curves["shots"].items()
    }
    note = few_episodes_note(results, "Episodes per point", per="point", most=curve_work.most_episodes())
    if note:
        st.info(paragraphs(note), icon=":material/info:")
    st.plotly_chart(
        accuracy_curves(
            {name: series[:3] for name, series in curves["shots"].items()},
            "shots per class (K)",
            f"{bench_way}-way: accuracy against shots",
            colours=colours,
        ),
        key="compare_shot_curve",
    )
    if curves["steps"]:
        st.plotly_chart(
            accuracy_curves(
                {name: series[:3] for name, series in curves["steps"].items()},
                "inner steps",
                f"{bench_way}-way {bench_shot}-shot: accuracy against inner steps",
                colours=colours,
            ),
            key="compare_step_curve",
        )
elif curves:
    st.info("The settings or models changed: click **Draw the curves** again.")
if not gradient:
    st.caption("Accuracy against inner steps needs a gradient-based model among those chosen.")

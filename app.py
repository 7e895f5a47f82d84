"""meta-learning playground: the Streamlit entry point (navigation and the shared sidebar)."""

import streamlit as st

from playground.runtime.allocator import keep_freed_memory
from playground.runtime.threads import serve_threads
from playground.ui.resources import chosen_models, current_device, device_choices, load_models, model_catalogue
from playground.ui.session import state
from playground.zoo.checkpoints import weights_fingerprint
from playground.zoo.shipped import picker_labels

st.set_page_config(page_title="meta-learning playground", page_icon="✍️", layout="wide")
# glibc then reuses freed activation buffers instead of mapping fresh pages for every adaptation
# (bench.adapt_latency --malloc measures it). Idempotent.
keep_freed_memory()
serve_threads()  # every visitor's run is a thread: one torch thread each keeps a class's clicks off each other
state()

pages = [
    st.Page("pages/build_task.py", title="Build a task", icon="✏️", default=True),
    st.Page("pages/adapt_predict.py", title="Adapt and predict", icon="⚡"),
    st.Page("pages/explorer.py", title="Explore a model", icon=":material/scatter_plot:"),
    st.Page("pages/compare.py", title="Compare models", icon=":material/balance:"),
    st.Page("pages/meta_train.py", title="Meta-train live", icon=":material/model_training:"),
    st.Page("pages/beat_human.py", title="Beat the human", icon=":material/person:"),
    st.Page("pages/sinusoid.py", title="Sine regression", icon=":material/ssid_chart:"),
]
nav = st.navigation(pages)
# The Omniglot models matter on the pages that adapt them; the sine page has models of its own.
uses_models = nav.url_path != "sinusoid"

with st.sidebar:
    device = current_device()
    names = list(model_catalogue())
    if uses_models:
        if not names:
            st.warning("No models in assets/checkpoints/. Train one with `python -m playground train`.")
        labels = picker_labels(list(model_catalogue().values()))
        # The choice lives in its own state key: a widget's value is dropped by Streamlit on a run
        # where the widget is not drawn, and the choice must survive every page. The widget is set from it on
        # every run, so that a choice made elsewhere (a model trained on Meta-train live) shows here too.
        st.session_state.model_choice_widget = chosen_models()
        st.multiselect(
            "Models to compare",
            names,
            key="model_choice_widget",
            on_change=lambda: st.session_state.update(model_choice=st.session_state.model_choice_widget),
            format_func=labels.get,
            help="Each is loaded on first use and shared by every visitor. The figure is its 5-way 1-shot "
            "accuracy on the evaluation alphabets, from its model card.",
        )
    loaded = load_models(device)  # load the chosen ones now, so the first click pays nothing
    with st.expander("Advanced", icon=":material/tune:"):
        st.radio("Device", device_choices(), key="device_choice", horizontal=True)
        st.caption(f"Running on **{device}**.")
        st.caption(
            "Loaded models are shared by every visitor and never changed by adapting. Each fingerprint hashes "
            "the weights, bit for bit."
        )
        for name, (_, learner) in loaded.items():
            st.markdown(f"`{name}` weights `{weights_fingerprint(learner)}`")

nav.run()

"""meta-learning playground: the Streamlit entry point (navigation and the shared sidebar)."""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).parent / "pages"))  # the pages' shared modules (ui, canvas)

from ui import current_device, device_choices, load_models, state  # noqa: E402

st.set_page_config(page_title="meta-learning playground", page_icon="✍️", layout="wide")
state()

pages = [
    st.Page("pages/build_task.py", title="Build a task", icon="✏️", default=True),
    st.Page("pages/adapt_predict.py", title="Adapt and predict", icon="⚡"),
]
nav = st.navigation(pages)

with st.sidebar:
    st.radio("Device", device_choices(), key="device_choice", horizontal=True)
    device = current_device()
    st.caption(f"Running on **{device}**")
    models = load_models(device)
    st.markdown("**Pretrained models** (5-way 1-shot, evaluation alphabets)")
    if not models:
        st.warning("No models in assets/checkpoints/.")
    for name, (entry, _) in models.items():
        st.markdown(f"- `{name}`: {entry.headline(5, 1) or 'not measured'}")

nav.run()

"""Home: what the playground is and which pretrained models it has."""

import streamlit as st

from playground.zoo import shipped_models

st.title("meta-learning playground")
st.write(
    "Draw or upload one to five examples of a few glyphs, and watch meta-learned models "
    "(MAML, Prototypical Networks, ...) adapt to your brand-new task in milliseconds."
)

models = shipped_models()
if not models:
    st.warning("No pretrained models found in assets/checkpoints/. Train one with `python -m playground train`.")
for m in models:
    acc = m.headline(5, 1)
    st.markdown(f"**{m.name}** ({m.algorithm}): 5-way 1-shot {acc or 'not measured yet'}")

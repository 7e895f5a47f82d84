"""meta-learning playground: the Streamlit entry point (navigation and the shared sidebar)."""

import streamlit as st

st.set_page_config(page_title="meta-learning playground", page_icon="✍️", layout="wide")

pages = [st.Page("pages/home.py", title="Home", icon="🏠", default=True)]
st.navigation(pages).run()

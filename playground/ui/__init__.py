"""What the app's pages share: the only part of playground that imports Streamlit.

The rest of the library runs without a browser (the CLI, training, the benchmarks, other people's
code), so Streamlit and its components are imported here and nowhere else in ``playground``
(``tests/test_streamlit_boundary.py`` checks). ``app.py`` and every page import these modules by
their full names, so a ``st.cache_resource`` function exists once and every page shares its cache.
"""

"""What the app's pages share: the only part of playground that imports Streamlit.

The rest of the library runs without a browser (the CLI, training, the benchmarks, other people's
code), so Streamlit and its components are imported here and nowhere else in ``playground``
(``tests/test_streamlit_boundary.py`` checks).

- ``session``: this visitor's task and its edits, messages for the next run, guarded actions, results
  remembered across reruns.
- ``resources``: what every visitor shares, loaded once per process (the models, Omniglot, the first
  screen's task), which models this visitor compares and on which device.
- ``widgets``: widgets the pages share and the keys that keep or reset them.
- ``canvas``: the drawing canvas.
- ``display``: names as literal markdown text, names cut to fit an axis, thumbnails.

``app.py`` and every page import these modules by their full names (no ``sys.path`` entry makes them
importable under another), so each ``st.cache_resource`` function exists once and every page shares
its cache. Nothing is re-exported here: a page's imports say which module holds what it uses.
"""

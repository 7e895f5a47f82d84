"""Plotly figures built from what the library returns (no Streamlit here)."""

"""The drawing canvas (streamlit-drawable-canvas), behind one function the pages call."""

from __future__ import annotations

import numpy as np


def drawing_canvas(key: str, stroke_width: int, size: int = 280) -> np.ndarray | None:
    """Show a canvas; return what is drawn as an RGBA array (None before any stroke)."""
    from streamlit_drawable_canvas import st_canvas

    result = st_canvas(
        stroke_width=stroke_width,
        stroke_color="#000000",
        background_color="#FFFFFF",
        drawing_mode="freedraw",
        height=size,
        width=size,
        return_image_data=True,
        update_streamlit=True,
        key=key,
    )
    if result is None or result.image_data is None:
        return None
    return np.asarray(result.image_data)


def has_ink(rgba: np.ndarray | None) -> bool:
    """True when the canvas holds a stroke (opaque, non-white pixels)."""
    if rgba is None:
        return False
    rgb = rgba[..., :3].astype(np.int16)
    alpha = rgba[..., 3] if rgba.shape[-1] == 4 else np.full(rgba.shape[:2], 255)
    return bool(((alpha > 0) & (rgb.min(-1) < 200)).any())


def drawn_glyph(rgba: np.ndarray | None) -> np.ndarray:
    """The canvas's drawing as the model sees it (`preprocess_image`); ValueError when nothing is drawn."""
    from playground.interactive.imaging import preprocess_image

    if not has_ink(rgba):
        raise ValueError("the drawing is blank: draw a glyph first")
    return preprocess_image(rgba, "the drawing")

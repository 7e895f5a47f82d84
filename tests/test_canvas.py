"""A drawing on the canvas becomes the image the model sees; a blank canvas is refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from playground.ui.canvas import drawn_glyph


def test_a_stroke_becomes_a_glyph_and_a_blank_canvas_is_refused():
    canvas = np.zeros((280, 280, 4), dtype=np.uint8)  # transparent, as the canvas starts
    with pytest.raises(ValueError, match="the drawing is blank"):
        drawn_glyph(canvas)
    with pytest.raises(ValueError, match="the drawing is blank"):
        drawn_glyph(None)
    canvas[60:220, 130:150] = (0, 0, 0, 255)  # one black stroke
    glyph = drawn_glyph(canvas)
    assert glyph.shape == (28, 28) and glyph.dtype == np.uint8
    assert glyph.max() > 100 and (glyph > 0).mean() < 0.5  # ink on a blank frame

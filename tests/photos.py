"""Photo-like pictures of a glyph on paper, made by the tests: paper grain, a gradient of light, a
shadow, a little perspective, sensor noise and JPEG, as a phone or webcam photo has."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage


def _perspective_coeffs(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> list[float]:
    """PIL's PERSPECTIVE coefficients mapping output points ``dst`` back to input points ``src``."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist()


def paper_photo(
    glyphs: list[np.ndarray],
    *,
    size: tuple[int, int] = (640, 480),
    fill: float = 0.45,
    gap: float = 0.6,
    seed: int = 0,
    light: tuple[float, float] = (0.4, 1.0),
    shadow: float = 0.55,
    warp: float = 0.05,
    grain: float = 0.05,
    ink: float = 0.15,
    exposure: float = 1.0,
    quality: int = 80,
) -> bytes:
    """A JPEG of ``glyphs`` (bool masks, True = ink) drawn side by side on paper, each ``fill`` of
    the frame's height, ``gap`` of a glyph apart; lit from one side (brightness from ``light[0]`` to
    ``light[1]``), a shadow darkening a corner to ``shadow``, corners moved by up to ``warp`` of the
    frame, grain and noise; ``exposure`` scales it all (low is too dark)."""
    rng = np.random.default_rng(seed)
    w, h = size
    side = round(fill * h)
    coverage = np.zeros((h, w), np.float32)
    row = side * len(glyphs) + round(gap * side) * max(0, len(glyphs) - 1)
    x = (w - row) // 2 + int(rng.integers(-w // 20, w // 20 + 1))
    y = (h - side) // 2 + int(rng.integers(-h // 20, h // 20 + 1))
    for glyph in glyphs:
        g = Image.fromarray(glyph.astype(np.uint8) * 255).resize((side, side), Image.Resampling.BILINEAR)
        coverage[y : y + side, x : x + side] = np.maximum(coverage[y : y + side, x : x + side], np.asarray(g) / 255)
        x += side + round(gap * side)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), 1.2)
    paper = 0.9 * (1 + grain * texture / texture.std())
    reflectance = paper * (1 - coverage) + ink * coverage
    img = Image.fromarray(np.clip(reflectance * 255, 0, 255).astype(np.uint8))
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    moved = [(cx + rng.uniform(-warp, warp) * w, cy + rng.uniform(-warp, warp) * h) for cx, cy in corners]
    img = img.transform((w, h), Image.Transform.PERSPECTIVE, _perspective_coeffs(corners, moved), fillcolor=230)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    lighting = light[0] + (light[1] - light[0]) * ramp
    # A shadow (a hand, a phone) with a soft edge across one corner.
    edge = ndimage.gaussian_filter((xx + yy * rng.uniform(0.5, 1.5) < rng.uniform(0.25, 0.4)).astype(float), h / 60)
    lighting *= 1 - (1 - shadow) * edge
    gray = np.asarray(img, np.float32) / 255 * lighting * exposure + rng.normal(0, 0.015, (h, w))
    tint = np.array([1.0, 0.97, 0.9])  # warm indoor light
    rgb = np.clip(gray[:, :, None] * tint * 255, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()

"""Style shifts: an Omniglot drawing turned into the picture a visitor would bring.

Each shift is a named function ``(picture, strength, rng) -> picture`` on a float RGB picture
(H x W x 3 in [0, 1], white paper) with ``strength`` in [0, 1]; `SHIFTS` is the one list of them,
in the order a real picture is made (the pen, the hand, the placement, the paper, the camera, the
file). `render` starts from a 105x105 original of the official zips and applies a list of
``(name, strength)`` pairs with one seeded generator, so a seed always gives the same picture;
`shifted_image` then sends the picture through the app's own `playground.interactive.imaging.preprocess_image`,
as an upload would go, to the 28x28 image a model sees.

Only Omniglot's own drawings are transformed here: no fonts, no other scripts.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from playground.data.omniglot import (
    DRAWINGS_PER_CHARACTER,
    SETS,
    DataError,
    _fingerprint,
    _iter_pngs,
    _source_of,
    default_cache_dir,
    default_data_dir,
    preprocess_omniglot_image,
    read_npz,
    write_npz,
)
from playground.interactive.imaging import preprocess_image

ORIGINAL_SIZE = 105
CACHE_VERSION = 1

Picture = np.ndarray  # float32 [H, W, 3] in [0, 1], paper = 1
ShiftFn = Callable[[Picture, float, np.random.Generator], Picture]


# --------------------------------------------------------------------------- helpers


def ink_of(picture: Picture) -> np.ndarray:
    """How much ink each pixel holds (0 = paper, 1 = black), from the darkest channel."""
    return np.clip(1.0 - picture.min(axis=2), 0.0, 1.0)


def picture_of(ink: np.ndarray) -> Picture:
    """Black ink on white paper."""
    return np.repeat((1.0 - np.clip(ink, 0.0, 1.0))[:, :, None], 3, axis=2).astype(np.float32)


def _disk(radius: float) -> np.ndarray:
    r = max(0, math.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy**2 + xx**2) <= radius**2 + 0.5


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: the 1-px centre lines of a binary mask's strokes."""
    m = np.pad(mask.astype(bool), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = m
            n = [
                np.roll(p, s, axis=(0, 1))
                for s in ((1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1))
            ]  # P2..P9 clockwise from north
            count = sum(x.astype(np.uint8) for x in n)
            ring = n + [n[0]]
            transitions = sum(((~ring[i]) & ring[i + 1]).astype(np.uint8) for i in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            if step == 0:
                cond = ~(p2 & p4 & p6) & ~(p4 & p6 & p8)
            else:
                cond = ~(p2 & p4 & p8) & ~(p2 & p6 & p8)
            remove = p & (count >= 2) & (count <= 6) & (transitions == 1) & cond
            if remove.any():
                m = m & ~remove
                changed = True
        if not changed:
            return m[1:-1, 1:-1]


def _affine(picture: Picture, matrix: np.ndarray, out_shape: tuple[int, int] | None = None) -> Picture:
    """Resample with output->input ``matrix`` (2x3, row/col), paper where nothing maps."""
    out_shape = out_shape or picture.shape[:2]
    channels = [
        ndimage.affine_transform(
            picture[:, :, c], matrix[:, :2], offset=matrix[:, 2], output_shape=out_shape, order=1, cval=1.0
        )
        for c in range(3)
    ]
    return np.stack(channels, axis=2).astype(np.float32)


def _about_centre(picture: Picture, linear: np.ndarray) -> np.ndarray:
    """The output->input affine matrix applying ``linear`` (forward, row/col) about the picture's centre."""
    h, w = picture.shape[:2]
    c = np.array([(h - 1) / 2, (w - 1) / 2])
    inv = np.linalg.inv(linear)
    return np.hstack([inv, (c - inv @ c)[:, None]])


def _smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-smoothed noise scaled to unit standard deviation."""
    n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (n / (n.std() + 1e-8)).astype(np.float32)


def _pad(picture: Picture, margin: int) -> Picture:
    return np.pad(picture, ((margin, margin), (margin, margin), (0, 0)), constant_values=1.0)


# --------------------------------------------------------------------------- the shifts


def hairline(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """A fine pen: strokes thinned towards a 1-px line (strength 1), drawn antialiased."""
    lines = skeleton(ink_of(picture) > 0.5)
    # Half the pen's width; Omniglot's strokes are about 2.2 px either side of their centre line.
    radius = 0.5 + 1.5 * (1.0 - strength * rng.uniform(0.7, 1.0))
    distance = ndimage.distance_transform_edt(~lines)
    return picture_of(np.clip(radius + 0.5 - distance, 0.0, 1.0).astype(np.float32))


def marker(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """A marker: strokes up to about four times Omniglot's width (strength 1)."""
    mask = ink_of(picture) > 0.5
    radius = 1.0 + 6.0 * strength * rng.uniform(0.6, 1.0)
    margin = math.ceil(radius) + 1
    thick = ndimage.binary_dilation(np.pad(mask, margin), _disk(radius))
    return picture_of(thick.astype(np.float32))


def slant(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """Italic handwriting: a horizontal shear of up to 0.45 (about 24 degrees) and a little vertical squash."""
    shear = 0.45 * strength * rng.uniform(0.5, 1.0) * rng.choice([-1.0, 1.0])
    squash = 1.0 - 0.15 * strength * rng.uniform()
    margin = round(0.3 * picture.shape[0])
    picture = _pad(picture, margin)
    linear = np.array([[squash, 0.0], [-shear, 1.0]])  # rows move sideways in proportion to height
    return _affine(picture, _about_centre(picture, linear))


def rotation(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """The page turned by up to 15 degrees either way."""
    angle = math.radians(15.0 * strength * rng.uniform(0.3, 1.0) * rng.choice([-1.0, 1.0]))
    margin = round(0.2 * picture.shape[0])
    picture = _pad(picture, margin)
    c, s = math.cos(angle), math.sin(angle)
    return _affine(picture, _about_centre(picture, np.array([[c, -s], [s, c]])))


def placement(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """Drawn small or large, off-centre on a wider page, stretched a little one way."""
    h, w = picture.shape[:2]
    scale = math.exp(rng.uniform(-1.1, 0.3) * strength)  # 0.33x .. 1.35x
    aspect = math.exp(rng.uniform(-0.25, 0.25) * strength)
    page = round(max(h, w) * (1.0 + 1.2 * strength))
    sy, sx = scale * aspect, scale / aspect
    gh, gw = h * sy, w * sx
    # Where the glyph's top-left corner lands: anywhere it stays on the page.
    ty = rng.uniform(0.0, max(page - gh, 0.0))
    tx = rng.uniform(0.0, max(page - gw, 0.0))
    matrix = np.array([[1 / sy, 0.0, -ty / sy], [0.0, 1 / sx, -tx / sx]])
    return _affine(picture, matrix, (page, page))


def elastic(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """A wobbly hand: a smooth random displacement of up to about 4 px at Omniglot's 105."""
    h, w = picture.shape[:2]
    sigma = 0.08 * max(h, w)
    amount = 4.0 * strength * max(h, w) / ORIGINAL_SIZE
    dy = _smooth_noise((h, w), sigma, rng) * amount
    dx = _smooth_noise((h, w), sigma, rng) * amount
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    coords = [yy + dy, xx + dx]
    channels = [ndimage.map_coordinates(picture[:, :, c], coords, order=1, cval=1.0) for c in range(3)]
    return np.stack(channels, axis=2).astype(np.float32)


def stroke_ends(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """Decorative stroke ends: a ball, a bar across the stroke (a serif) or a flick at each free end."""
    ink = ink_of(picture)
    mask = ink > 0.5
    lines = skeleton(mask)
    neighbours = ndimage.convolve(lines.astype(np.uint8), np.ones((3, 3), np.uint8), mode="constant") - 1
    ends = np.argwhere(lines & (neighbours == 1))
    if len(ends) == 0:
        return picture
    out = mask.copy()
    style = rng.choice(["ball", "serif", "flick"])
    size = (2.0 + 5.0 * strength) * max(mask.shape) / ORIGINAL_SIZE
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w]
    pts = np.argwhere(lines)
    for y, x in ends:
        # The stroke's direction at its end: from the centre-line pixels nearby to the end.
        near = pts[(np.abs(pts[:, 0] - y) <= 6) & (np.abs(pts[:, 1] - x) <= 6)]
        d = np.array([y, x], dtype=np.float64) - near.mean(axis=0)
        norm = np.linalg.norm(d)
        d = d / norm if norm > 1e-6 else np.array([1.0, 0.0])
        perp = np.array([-d[1], d[0]])
        if style == "ball":
            out |= (yy - y) ** 2 + (xx - x) ** 2 <= (0.7 * size) ** 2
            continue
        direction = perp if style == "serif" else (perp + d) / math.sqrt(2.0) * rng.choice([-1.0, 1.0])
        half = size if style == "serif" else 1.5 * size
        for t in np.linspace(-half if style == "serif" else 0.0, half, 4 * math.ceil(half) + 1):
            cy, cx = y + t * direction[0], x + t * direction[1]
            out |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 4.0  # as wide as the pen
    return picture_of(out.astype(np.float32))


def ink_colour(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """Coloured ink, paler as strength grows (light blue, orange, a highlighter at the top)."""
    ink = ink_of(picture)
    hue = rng.uniform()
    sat = rng.uniform(0.5, 1.0)
    value = 1.0 - 0.8 * (1.0 - strength * rng.uniform(0.4, 0.9))  # 0.2 (dark) .. 0.92 (pale)
    rgb = np.array(_hsv_to_rgb(hue, sat, value), dtype=np.float32)
    paper = picture * (1.0 - ink[:, :, None]) + ink[:, :, None]  # what lies under the ink
    return (paper * (1.0 - ink[:, :, None]) + rgb[None, None, :] * ink[:, :, None]).astype(np.float32)


def _hsv_to_rgb(h: float, s: float, v: float) -> tuple[float, float, float]:
    import colorsys

    return colorsys.hsv_to_rgb(h, s, v)


def blur(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """Out of focus: a Gaussian blur of up to 2.5 px at Omniglot's 105."""
    sigma = 2.5 * strength * rng.uniform(0.5, 1.0) * max(picture.shape[:2]) / ORIGINAL_SIZE
    if sigma < 0.1:
        return picture
    return ndimage.gaussian_filter(picture, (sigma, sigma, 0), mode="nearest").astype(np.float32)


def noise(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """Sensor noise and specks of dust."""
    std = 0.2 * strength * rng.uniform(0.5, 1.0)
    grain = rng.standard_normal(picture.shape[:2]).astype(np.float32)[:, :, None] * std
    out = picture + grain
    specks = rng.uniform(size=picture.shape[:2]) < 0.004 * strength
    out[specks] = rng.uniform(0.0, 0.6)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def paper(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """Textured, tinted paper under uneven light (a gradient and a dim corner)."""
    h, w = picture.shape[:2]
    tint = np.array([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.82, 0.97)], dtype=np.float32)
    grain = 0.05 * _smooth_noise((h, w), 0.8, rng) + 0.06 * _smooth_noise((h, w), 0.15 * max(h, w), rng)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = (math.cos(angle) * (xx / max(w - 1, 1) - 0.5) + math.sin(angle) * (yy / max(h - 1, 1) - 0.5)) + 0.5
    light = 1.0 - 0.55 * strength * np.clip(ramp, 0.0, 1.0)
    base = (1.0 + strength * grain)[:, :, None] * (1.0 - strength * (1.0 - tint))[None, None, :]
    return np.clip(picture * base * light[:, :, None], 0.0, 1.0).astype(np.float32)


def photo(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """A phone photo of the paper: perspective, a soft shadow, low contrast, grey light, a larger frame."""
    h, w = picture.shape[:2]
    margin = round(0.25 * max(h, w))
    pic = _pad(picture, margin)
    H, W = pic.shape[:2]
    # Perspective: each corner of the sheet moves by up to 12% of the frame.
    k = 0.12 * strength
    corners = np.array([[0, 0], [W, 0], [W, H], [0, H]], dtype=np.float64)
    moved = corners + rng.uniform(-k, k, size=(4, 2)) * np.array([W, H])
    coeffs = _perspective_coeffs(moved, corners)
    img = Image.fromarray((pic * 255).astype(np.uint8))
    img = img.transform(
        (W, H), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR, fillcolor=(255, 255, 255)
    )
    out = np.asarray(img, dtype=np.float32) / 255.0
    # Low contrast: ink never black, paper never white.
    paper_level = 1.0 - 0.3 * strength * rng.uniform(0.5, 1.0)
    ink_level = 0.45 * strength * rng.uniform(0.5, 1.0)
    out = ink_level + (paper_level - ink_level) * out
    # A soft shadow: a hand or the phone across part of the sheet.
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    edge = math.cos(angle) * (xx / W - 0.5) + math.sin(angle) * (yy / H - 0.5) - rng.uniform(-0.3, 0.3)
    shadow = 1.0 - 0.45 * strength / (1.0 + np.exp(-edge / 0.05))
    out = out * shadow[:, :, None] * np.array([1.0, 0.98, 0.95], dtype=np.float32)
    out = ndimage.gaussian_filter(out, (0.6, 0.6, 0))
    out = out + rng.standard_normal((H, W, 1)).astype(np.float32) * 0.02 * strength
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _perspective_coeffs(src: np.ndarray, dst: np.ndarray) -> list[float]:
    """PIL's PERSPECTIVE coefficients mapping output points ``dst`` to input points ``src``."""
    rows = []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return np.linalg.solve(np.array(rows), src.reshape(8)).tolist()


def jpeg(picture: Picture, strength: float, rng: np.random.Generator) -> Picture:
    """Saved small as a low-quality JPEG (quality 60 down to 5), as scans and chat apps do."""
    quality = max(5, round(60 - 55 * strength * rng.uniform(0.6, 1.0)))
    h, w = picture.shape[:2]
    img = Image.fromarray((np.clip(picture, 0, 1) * 255).astype(np.uint8))
    shrink = 1.0 - 0.4 * strength * rng.uniform()
    small = img.resize((max(16, round(w * shrink)), max(16, round(h * shrink))), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=quality)
    back = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.asarray(back, dtype=np.float32) / 255.0


@dataclass(frozen=True)
class Shift:
    name: str
    fn: ShiftFn
    text: str  # a few words for tables and docs


# The one list of shifts, in the order a picture is made: pen, hand, placement, paper, camera, file.
SHIFTS: tuple[Shift, ...] = (
    Shift("hairline", hairline, "a fine pen, down to 1-px lines"),
    Shift("marker", marker, "a marker, up to 4x the stroke width"),
    Shift("stroke_ends", stroke_ends, "decorative stroke ends (balls, serifs, flicks)"),
    Shift("ink_colour", ink_colour, "coloured ink, pale at full strength"),
    Shift("slant", slant, "italic shear up to 0.45"),
    Shift("elastic", elastic, "a wobbly hand"),
    Shift("rotation", rotation, "rotated up to 15 degrees"),
    Shift("placement", placement, "small, large, off-centre, stretched"),
    Shift("paper", paper, "textured tinted paper, uneven light"),
    Shift("photo", photo, "phone photo: perspective, shadow, low contrast"),
    Shift("blur", blur, "out of focus, sigma up to 2.5 px"),
    Shift("noise", noise, "sensor noise and specks"),
    Shift("jpeg", jpeg, "small low-quality JPEG"),
)
SHIFT_NAMES: tuple[str, ...] = tuple(s.name for s in SHIFTS)
_BY_NAME = {s.name: s for s in SHIFTS}
NONE = "none"  # the row of unshifted drawings (through preprocess_image all the same)
MIXED = "mixed"  # each image its own random combination of shifts


def check_shift(name: str) -> None:
    """ValueError naming the allowed shifts when ``name`` is not one."""
    if name not in _BY_NAME and name not in (NONE, MIXED):
        raise ValueError(f"unknown style shift {name!r}; choose from {', '.join((NONE, *SHIFT_NAMES, MIXED))}")


def random_style(rng: np.random.Generator, max_shifts: int = 3) -> list[tuple[str, float]]:
    """A random combination of 1..max_shifts distinct shifts, each at a strength in [0.3, 1], in `SHIFTS` order."""
    count = int(rng.integers(1, max_shifts + 1))
    chosen = set(rng.choice(len(SHIFTS), size=count, replace=False).tolist())
    return [(SHIFTS[i].name, float(rng.uniform(0.3, 1.0))) for i in sorted(chosen)]


def style_for(shift: str, rng: np.random.Generator) -> list[tuple[str, float]]:
    """The shifts one image of a benchmark row gets: none, the named one at a random strength in
    [0.5, 1], or (``mixed``) a random combination (`random_style`)."""
    check_shift(shift)
    if shift == NONE:
        return []
    if shift == MIXED:
        return random_style(rng)
    return [(shift, float(rng.uniform(0.5, 1.0)))]


def render(drawing: np.ndarray, shifts: Sequence[tuple[str, float]], seed: int) -> np.ndarray:
    """A 105x105 original (bool, True = ink) under ``shifts`` -> uint8 RGB picture (white paper)."""
    rng = np.random.default_rng(seed)
    picture = picture_of(drawing.astype(np.float32))
    for name, strength in shifts:
        check_shift(name)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"shift strength must be between 0 and 1 (got {strength} for {name})")
        picture = _BY_NAME[name].fn(picture, float(strength), rng)
    return (np.clip(picture, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def shifted_image(drawing: np.ndarray, shifts: Sequence[tuple[str, float]], seed: int) -> np.ndarray:
    """`render`, then the app's `preprocess_image`: the 28x28 uint8 image (ink = 255) a model sees."""
    return preprocess_image(render(drawing, shifts, seed), name="a shifted drawing")


def training_image(drawing: np.ndarray) -> np.ndarray:
    """A 105x105 original as the training set has it: Omniglot's own 28x28 downsampling, no shift.

    `preprocess_image` refuses some unshifted drawings (a character of two separate parts reads as
    two glyphs), so the style bank cannot lean on it for its stand-in."""
    return preprocess_omniglot_image(Image.fromarray(np.where(drawing, 0, 255).astype(np.uint8)))


def image_seed(*parts: object) -> int:
    """A seed from any parts (a row, a character, a drawing, a variant): independent streams per image."""
    digest = hashlib.sha256(" ".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


# --------------------------------------------------------------------------- originals


@dataclass
class Originals:
    """The 105x105 drawings of both sets, bit-packed: drawing(c, d) in `Omniglot`'s character order."""

    packed: np.ndarray  # [C, 20, ceil(105*105/8)] uint8
    names: list[str]  # "alphabet/character", as Omniglot.names()
    sets: list[str]

    def drawing(self, c: int, d: int) -> np.ndarray:
        bits = np.unpackbits(self.packed[c, d])[: ORIGINAL_SIZE * ORIGINAL_SIZE]
        return bits.reshape(ORIGINAL_SIZE, ORIGINAL_SIZE).astype(bool)

    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}


def load_originals(data_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> Originals:
    """The official 105x105 drawings (ink = True), decoded once and cached bit-packed (about 45 MB)."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    sources = [_source_of(data_dir, s) for s in SETS]
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache_dir / f"omniglot105-{_fingerprint(sources)}-v{CACHE_VERSION}.npz"
    z = read_npz(cache_file)
    if z is not None:
        return Originals(z["packed"], z["names"].tolist(), z["sets"].tolist())
    grouped: dict[tuple[str, str, str], list[np.ndarray]] = {}
    for set_name, source in zip(SETS, sources):
        for alphabet, character, filename, data in _iter_pngs(source, set_name):
            try:
                with Image.open(io.BytesIO(data)) as img:
                    ink = np.asarray(img.convert("L")) < 128
            except Exception as exc:
                raise DataError(f"cannot read {source}:{alphabet}/{character}/{filename} ({exc})") from exc
            if ink.shape != (ORIGINAL_SIZE, ORIGINAL_SIZE):
                raise DataError(f"{source}:{alphabet}/{character}/{filename} is {ink.shape}, expected 105x105")
            grouped.setdefault((set_name, alphabet, character), []).append(np.packbits(ink.ravel()))
    # Omniglot's order: the sets in SETS order, then characters sorted by (alphabet, character).
    keys = sorted(grouped, key=lambda k: (SETS.index(k[0]), k[1], k[2]))
    for k in keys:
        if len(grouped[k]) != DRAWINGS_PER_CHARACTER:
            raise DataError(f"{k[1]}/{k[2]} has {len(grouped[k])} drawings, expected {DRAWINGS_PER_CHARACTER}")
    originals = Originals(
        np.stack([np.stack(grouped[k]) for k in keys]), [f"{k[1]}/{k[2]}" for k in keys], [k[0] for k in keys]
    )
    write_npz(cache_file, packed=originals.packed, names=np.asarray(originals.names), sets=np.asarray(originals.sets))
    return originals


# --------------------------------------------------------------------------- a bank for meta-training

BANK_VARIANTS = 4  # shifted variants per drawing in a training bank, unless told otherwise


def code_version() -> str:
    """A hash of the shifts' and the preprocessing's source: images made by other code are made again."""
    import playground.interactive.imaging

    h = hashlib.sha256(Path(playground.interactive.imaging.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:12]


def _bank_rows(args: tuple[Originals, list[int], int, int]) -> np.ndarray:
    originals, rows, variants, seed = args
    out = np.zeros((len(rows), DRAWINGS_PER_CHARACTER, variants, 28, 28), dtype=np.uint8)
    for i, c in enumerate(rows):
        for d in range(DRAWINGS_PER_CHARACTER):
            drawing = originals.drawing(c, d)
            for v in range(variants):
                s = image_seed("bank", seed, originals.names[c], d, v)
                style = random_style(np.random.default_rng(s))
                try:
                    out[i, d, v] = shifted_image(drawing, style, s)
                except ValueError:  # refused by preprocess_image: the training image itself stands in
                    out[i, d, v] = training_image(drawing)
    return out


def style_bank(
    names: Sequence[str],
    variants: int = BANK_VARIANTS,
    seed: int = 0,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    workers: int = 1,
) -> np.ndarray:
    """``variants`` randomly shifted 28x28 versions of every drawing of the characters ``names``
    ("alphabet/character"): [len(names), 20, variants, 28, 28] uint8, each a `random_style` through
    `preprocess_image`. Cached on disk, keyed by the names, the count, the seed and the preprocessing."""
    if variants < 1:
        raise ValueError(f"a style bank needs at least 1 variant per drawing (got {variants})")
    originals = load_originals(data_dir, cache_dir)
    where = originals.index()
    missing = [n for n in names if n not in where]
    if missing:
        raise ValueError(f"no Omniglot character named {missing[0]!r} ({len(missing)} unknown)")
    key = hashlib.sha256(
        "|".join([*names, str(variants), str(seed), str(CACHE_VERSION), *SHIFT_NAMES, code_version()]).encode()
    ).hexdigest()[:16]
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache_dir / f"style-bank-{key}.npy"
    if cache_file.exists():
        try:
            return np.load(cache_file, allow_pickle=False)
        except Exception:
            cache_file.unlink(missing_ok=True)
    rows = [where[n] for n in names]
    chunks = [(originals, rows[i : i + 16], variants, seed) for i in range(0, len(rows), 16)]
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_bank_rows, chunks)
    else:
        parts = [_bank_rows(c) for c in chunks]
    bank = np.concatenate(parts) if parts else np.zeros((0, DRAWINGS_PER_CHARACTER, variants, 28, 28), np.uint8)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npy")
        np.save(tmp, bank)
        os.replace(tmp, cache_file)
    except OSError:
        pass
    return bank


def base_name(class_name: str) -> tuple[str, int]:
    """A class's character and its quarter turns: "Greek/character03 rot90" -> ("Greek/character03", 1)."""
    name, _, rotation = class_name.partition(" ")
    if not rotation:
        return name, 0
    if not (rotation.startswith("rot") and rotation[3:].isdigit() and int(rotation[3:]) % 90 == 0):
        raise ValueError(f"cannot read the rotation of class {class_name!r}")
    return name, int(rotation[3:]) // 90 % 4


def style_variants(
    dataset_names: Sequence[str],
    variants: int = BANK_VARIANTS,
    seed: int = 0,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    workers: int = 1,
):
    """The `style_bank` of a dataset's classes, rotated as each class is: a uint8 tensor
    [classes, 20, variants, 28, 28] for `playground.data.episodes.StyleTaskSampler`."""
    import torch

    bases = [base_name(n) for n in dataset_names]
    unique = list(dict.fromkeys(b for b, _ in bases))
    bank = torch.from_numpy(style_bank(unique, variants, seed, data_dir, cache_dir, workers))
    row = {n: i for i, n in enumerate(unique)}
    out = torch.empty((len(bases), *bank.shape[1:]), dtype=torch.uint8)
    for i, (b, turns) in enumerate(bases):
        out[i] = torch.rot90(bank[row[b]], turns, dims=(2, 3))
    return out

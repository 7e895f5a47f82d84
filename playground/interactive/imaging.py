"""Turn a user's drawing or uploaded picture into what the model sees: 28x28 uint8, ink = 255.

The target is the look of Omniglot after `preprocess_omniglot_image` (105x105 binary scan, BOX
resize to 28x28). Measured on 1,500 random Omniglot drawings (105 px originals):

* the glyph's bounding box, longer side, is a median 0.66 of the frame (10-90 %: 0.47-0.80);
* the stroke width, estimated as 2 * ink area / ink perimeter, is a median 4.36 px (10-90 %:
  3.9-4.7 px), i.e. about 1.2 px at 28x28.

`preprocess_image` therefore: decodes safely, makes a grey image, finds which side is ink (dark on
light or light on dark), thresholds the ink against the background, frames the ink's bounding box
so its longer side is 0.66 of the frame and centred, redraws it at a working resolution of 210 px
(2x Omniglot's 105), thins or thickens the strokes one pixel at a time until the stroke width
estimate matches Omniglot's (8.7 px at 210), and finally BOX-resizes to 28x28 as Omniglot's
preprocessing does.

Photos of paper get two more steps. Where the background along the border is uneven (a gradient
of light, a shadow), the paper's brightness is estimated everywhere (a grey closing of a small copy
wipes the strokes out; blurred and scaled back) and the picture is divided by it, so ink is judged
against the paper right around it: an adaptive threshold. Paper grain is smoothed away and specks
are dropped. A picture whose ink falls into well-separated clusters (several glyphs side by side)
is refused with a message saying what to do; on every one of Omniglot's 13,180 evaluation drawings
the pieces of one character lie within 0.7 of the larger piece's size of each other, so clusters
further apart than their own size are separate glyphs.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGE_SIZE = 28
MAX_FILE_BYTES = 10 * 1024 * 1024  # a drawing or a photo of one never needs more
MAX_PIXELS = 40_000_000  # refuse larger images before decoding them (decompression bombs)
DEFAULT_NAME = "the image"  # how messages call a picture that has no file name
MIN_SIDE = 8  # px; smaller images hold no readable glyph
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
FORMATS_TEXT = "PNG, JPEG, WebP, GIF or BMP"

# Omniglot statistics (see the module docstring) and the working resolution that matches them.
OMNIGLOT_FRAME = 105
OMNIGLOT_BBOX_FRACTION = 0.66  # longer side of the ink's bounding box / frame side
OMNIGLOT_STROKE_WIDTH = 4.36  # px at 105, as 2 * area / perimeter (4-neighbour edges)
WORK_SIZE = 210  # working frame, 2x Omniglot's; BOX-resized to 28 at the end
WORK_STROKE_WIDTH = OMNIGLOT_STROKE_WIDTH * WORK_SIZE / OMNIGLOT_FRAME

PROCESS_MAX_SIDE = 1024  # larger pictures are box-reduced first: plenty for a glyph, and fast
MIN_CONTRAST = 0.1  # ink must differ from the background by this much (0..1 scale)
MAX_INK_FRACTION = 0.6  # more ink than this is not a glyph on a background
# Noise: much ink, in strokes 1-2 px wide, broken into many specks. The speck count matters for
# small pictures: a dense glyph at 28x28 (Omniglot's own size) also has 1-2 px strokes, but in a
# handful of pieces (at most 6 over the evaluation set), where noise has hundreds.
NOISE_INK_FRACTION, NOISE_STROKE_WIDTH, NOISE_MIN_SPECKS = 0.15, 2.0, 25
BBOX_TRIM = 0.002  # ignore this fraction of ink mass on each side (specks of dust)
MAX_MORPH_STEPS = 60

# Photos (see the module docstring).
UNEVEN_BORDER = 0.06  # the paper's brightness along the border spans more than this: flatten it
PHOTO_MIN_SIDE = 64  # px; a smaller picture is an icon-sized glyph, not a photo of paper
BACKGROUND_SIDE = 128  # px; the background is estimated on a copy this size...
BACKGROUND_WINDOW = 1 / 8  # ...by a closing this fraction of its side: wider than any pen stroke
TOO_DARK = 0.25  # a picture whose brightest part is darker than this (0..1) is too dark to read
PHOTO_NOISE_SIGMAS = 6.0  # ink must stand out from the paper's grain by this many noise deviations
SPECK_SHARE = 0.01  # ink blobs below this share of all ink are grain or dust, not strokes
NOISY_GRAIN = 0.02  # pixel-to-pixel noise (0..1 scale) past which a picture is smoothed before reading ink
# Several glyphs: clusters of ink further apart than the larger one's size, each with at least this
# share of the largest cluster's ink (a diacritic dot far from its letter is not a second glyph).
GLYPH_GAP, GLYPH_SHARE = 1.0, 0.25
MAX_CLUSTER_PIECES = 200


class InputError(ValueError):
    """A drawing, picture or task file we cannot use; the message says why in plain words."""


# --------------------------------------------------------------------------- decoding


def _file_hint(data: bytes) -> str:
    head = data[:32]
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypmif1", b"ftypmsf1", b"ftypavif"):
        return " (iPhone HEIC/AVIF photos: export or share them as JPEG first)"
    if head.lstrip().startswith((b"<svg", b"<?xml")):
        return " (SVG drawings: export them as PNG first)"
    if head.startswith(b"%PDF"):
        return " (PDF documents: take a screenshot or export the page as PNG)"
    return ""


def decode_image(data: bytes, name: str = DEFAULT_NAME, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode a file's bytes into a loaded PIL image, or raise InputError saying what is wrong.

    Refuses files over MAX_FILE_BYTES, formats other than ALLOWED_FORMATS, images over
    ``max_pixels`` (checked from the header, before decoding), animations, and damaged files.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"{name} is not a file's contents (got {type(data).__name__})")
    data = bytes(data)
    if len(data) == 0:
        raise InputError(f"{name} is empty (0 bytes): choose the file again")
    if len(data) > MAX_FILE_BYTES:
        raise InputError(
            f"{name} is too large ({len(data) / 1e6:.1f} MB); the limit is {MAX_FILE_BYTES / 1e6:.0f} MB. "
            "Crop the glyph or save it smaller."
        )
    not_image = f"{name} is not an image file we can read ({FORMATS_TEXT}){_file_hint(data)}"
    too_big = f"{name} is too large to open safely (more than {max_pixels / 1e6:g} megapixels); save it smaller"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(too_big) from exc
    except Exception as exc:  # UnidentifiedImageError, SyntaxError, OSError, struct.error, ...
        raise InputError(not_image) from exc
    width, height = img.size
    if width * height > max_pixels:
        raise InputError(f"{name} is too large: {width}x{height} pixels is more than {max_pixels / 1e6:g} megapixels")
    try:
        animated = bool(getattr(img, "is_animated", False)) or getattr(img, "n_frames", 1) > 1
    except Exception as exc:
        raise InputError(f"{name} is damaged or truncated: it cannot be read completely") from exc
    if animated:
        raise InputError(f"{name} is an animation; upload a single still image of the glyph")
    try:
        if img.format == "JPEG" and max(width, height) > PROCESS_MAX_SIDE:
            img.draft(None, (PROCESS_MAX_SIDE, PROCESS_MAX_SIDE))  # decode photos at reduced scale
        img.load()
    except Exception as exc:
        raise InputError(f"{name} is damaged or truncated: it cannot be read completely") from exc
    try:
        img = ImageOps.exif_transpose(img)  # phone photos: honour the rotation flag
    except Exception:
        pass  # a broken orientation tag only costs the rotation
    return img


# --------------------------------------------------------------------------- to grey


def _array_to_image(arr: np.ndarray, name: str) -> Image.Image:
    """HxW grey, HxWx1, HxWx2 (grey+alpha), HxWx3 RGB or HxWx4 RGBA array -> PIL image."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (2, 3, 4))):
        raise InputError(f"{name} has shape {arr.shape}; expected HxW grey, HxWx3 RGB or HxWx4 RGBA")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise InputError(f"{name} is too large: {arr.shape[1]}x{arr.shape[0]} pixels")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InputError(f"{name} contains invalid values (NaN or infinity)")
        top = 1.0 if arr.size == 0 or float(arr.max()) <= 1.0 else 255.0
        arr = np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
    elif arr.dtype.kind in "iu":
        top = 255 if arr.size == 0 or int(arr.max()) <= 255 else 65535
        arr = np.clip(arr.astype(np.int64) * 255 // top, 0, 255).astype(np.uint8)
    else:
        raise InputError(f"{name} has pixel type {arr.dtype}; expected numbers")
    return Image.fromarray(np.ascontiguousarray(arr))  # L, LA, RGB or RGBA from the shape


def image_to_gray(img: Image.Image) -> np.ndarray:
    """Any PIL image -> float32 HxW in [0, 1], 1 = white, transparency composited away."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        img = img.convert("I")
    elif mode == "F":
        pass
    elif mode in ("LA", "La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    elif mode in ("1", "L"):
        img = img.convert("L")
    else:  # RGB, P, CMYK, YCbCr, LAB, HSV, RGBX, ...
        img = img.convert("RGB")
    factor = math.ceil(max(img.size) / PROCESS_MAX_SIDE)
    if factor > 1:
        img = img.reduce(factor)
    if img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        top = float(arr.max(initial=0.0))
        scale = 1.0 if (img.mode == "F" and top <= 1.0) else (255.0 if top <= 255.0 else 65535.0)
        return np.clip(arr / scale, 0.0, 1.0)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        return arr
    lum = arr[:, :, 0] * 0.299 + arr[:, :, 1] * 0.587 + arr[:, :, 2] * 0.114
    if arr.shape[2] == 3:
        return lum
    alpha = arr[:, :, 3]
    if alpha.min() >= 0.99:
        return lum
    # Transparent means background. Put the strokes on a background they stand out from:
    # white behind dark strokes, black behind light ones.
    opaque = alpha > 0.5
    stroke = float(np.median(lum[opaque])) if opaque.any() else 0.0
    background = 1.0 if stroke < 0.5 else 0.0
    return alpha * lum + (1.0 - alpha) * background


# --------------------------------------------------------------------------- geometry


def _stroke_width(mask: np.ndarray) -> float:
    """2 * area / perimeter: the width of a long stroke, in pixels."""
    area = np.count_nonzero(mask)
    if area == 0:
        return 0.0
    p = np.pad(mask, 1)
    perimeter = np.count_nonzero(p[1:] != p[:-1]) + np.count_nonzero(p[:, 1:] != p[:, :-1])
    return 2.0 * area / perimeter


def _pieces(mask: np.ndarray) -> int:
    """How many separate (8-connected) blobs of ink the mask holds."""
    from scipy import ndimage

    return int(ndimage.label(mask, structure=np.ones((3, 3)))[1])


def _shifted(m: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(m)
    h, w = m.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = m[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _morph_step(m: np.ndarray, grow: bool, step: int) -> np.ndarray:
    """Dilate (grow) or erode by a 2x2 square: strokes get 1 px wider or thinner. Alternating
    the square's corner keeps the glyph in place (two steps = one 3x3 square)."""
    s = 1 if step % 2 == 0 else -1
    op = np.logical_or if grow else np.logical_and
    m = op(m, _shifted(m, s, 0))
    return op(m, _shifted(m, 0, s))


def _trimmed_range(mass: np.ndarray) -> tuple[int, int]:
    """First and last index holding the ink, ignoring BBOX_TRIM of the mass at each end."""
    c = np.cumsum(mass, dtype=np.float64)
    total = c[-1]
    lo = int(np.searchsorted(c, total * BBOX_TRIM, side="right"))
    hi = int(np.searchsorted(c, total * (1.0 - BBOX_TRIM), side="left"))
    return lo, max(lo, min(hi, len(mass) - 1))


def _extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The ink's bounding box (top, bottom, left, right), ignoring specks (see _trimmed_range)."""
    return (*_trimmed_range(mask.sum(axis=1)), *_trimmed_range(mask.sum(axis=0)))


def _normalise_stroke(m: np.ndarray, target: float) -> np.ndarray:
    """Thicken or thin the strokes 1 px at a time while that brings the width closer to target."""
    width = _stroke_width(m)
    grow = width < target
    for step in range(MAX_MORPH_STEPS):
        cand = _morph_step(m, grow, step)
        cand_width = _stroke_width(cand)
        if abs(cand_width - target) >= abs(width - target):
            break
        if not grow:  # thinning must not make thin parts of the glyph vanish
            area, cand_area = np.count_nonzero(m), np.count_nonzero(cand)
            if cand_area == 0 or cand_area < 0.75 * area * (width - 1.0) / width:
                break
            (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) = _extent(m), _extent(cand)
            if max(cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1) > 2:
                break
        m, width = cand, cand_width
    return m


# --------------------------------------------------------------------------- photos


def _block_mean(gray: np.ndarray, factor: int) -> np.ndarray:
    """Average factor x factor blocks (edges padded by repetition)."""
    h, w = gray.shape
    ph, pw = -h % factor, -w % factor
    padded = np.pad(gray, ((0, ph), (0, pw)), mode="edge")
    return padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).mean(axis=(1, 3))


def paper_background(gray: np.ndarray, dark_ink: bool | None) -> np.ndarray:
    """The paper's brightness under the ink, at full size: a grey closing (opening for light ink)
    of a small copy, wide enough to wipe out strokes, then smoothed and scaled back. With
    ``dark_ink`` None, a median instead: paper either side of the ink, whichever its polarity."""
    from scipy import ndimage

    h, w = gray.shape
    factor = max(1, math.ceil(max(h, w) / BACKGROUND_SIDE))
    small = _block_mean(gray, factor)
    window = max(3, round(BACKGROUND_WINDOW * max(small.shape)) | 1)
    if dark_ink is None:
        bg = ndimage.median_filter(small, size=window, mode="nearest")
    else:
        morph = ndimage.grey_closing if dark_ink else ndimage.grey_opening
        bg = morph(small, size=window, mode="nearest")
    bg = ndimage.gaussian_filter(bg, 1.0, mode="nearest")
    size = (bg.shape[1] * factor, bg.shape[0] * factor)
    full = np.asarray(Image.fromarray(bg.astype(np.float32)).resize(size, Image.Resampling.BILINEAR))
    return np.ascontiguousarray(full[:h, :w])


def _uneven(paper: np.ndarray) -> bool:
    """True when the paper's brightness (see paper_background) along the border spans more than
    UNEVEN_BORDER: light falling off or a shadow, as in a photo; drawings and scans are even."""
    low, high = np.percentile(_border(paper), (10, 90))  # a stroke running along one edge is not uneven paper
    return float(high - low) > UNEVEN_BORDER


def _border(a: np.ndarray) -> np.ndarray:
    """A ring 3 % of the shorter side wide along the edges of ``a``."""
    h, w = a.shape
    ring = max(1, round(0.03 * min(h, w)))
    return np.concatenate([a[:ring].ravel(), a[-ring:].ravel(), a[:, :ring].ravel(), a[:, -ring:].ravel()])


def ink_clusters(mask: np.ndarray, gap: float = GLYPH_GAP) -> list[tuple[int, tuple[int, int, int, int]]]:
    """Group the ink's blobs into clusters: (ink pixels, (top, bottom, left, right)) each, largest
    first. Two clusters join when the gap between their boxes is at most ``gap`` times the larger
    box's longer side; blobs under SPECK_SHARE of the ink are left out."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return []
    areas = np.bincount(labels.ravel())[1:]
    boxes = ndimage.find_objects(labels)
    order = [i for i in np.argsort(-areas)[:MAX_CLUSTER_PIECES] if areas[i] >= SPECK_SHARE * areas.sum()]
    found = [[int(areas[i]), boxes[i][0].start, boxes[i][0].stop, boxes[i][1].start, boxes[i][1].stop] for i in order]
    merged = True
    while merged:
        merged = False
        for i in range(len(found)):
            for j in range(i + 1, len(found)):
                a, b = found[i], found[j]
                apart = max(b[1] - a[2], a[1] - b[2], b[3] - a[4], a[3] - b[4], 0)
                size = max(a[2] - a[1], a[4] - a[3], b[2] - b[1], b[4] - b[3])
                if apart <= gap * size:
                    found[i] = [a[0] + b[0], min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3]), max(a[4], b[4])]
                    del found[j]
                    merged = True
                    break
            if merged:
                break
    found.sort(key=lambda c: -c[0])
    return [(c[0], (c[1], c[2] - 1, c[3], c[4] - 1)) for c in found]


def glyph_count(mask: np.ndarray) -> int:
    """How many separate glyphs the ink shows: clusters (see ink_clusters) with at least GLYPH_SHARE
    of the largest one's ink."""
    clusters = ink_clusters(mask)
    return sum(c[0] >= GLYPH_SHARE * clusters[0][0] for c in clusters) if clusters else 0


# --------------------------------------------------------------------------- pipeline


def _ink_map(gray: np.ndarray, name: str) -> tuple[np.ndarray, float, bool]:
    """How inky each pixel is (0 = paper), the ink level, and whether the picture was a photo
    whose uneven paper had to be flattened. Raises InputError when no glyph stands out."""
    # Background level from a ring along the border (on a photo, the paper around each place);
    # ink is whatever departs from it, in the direction (darker or lighter) that holds more departure.
    paper = paper_background(gray, None)
    photo = min(gray.shape) >= PHOTO_MIN_SIDE and _uneven(paper)
    dev = gray - (paper if photo else float(np.median(_border(gray))))
    darker = float(np.clip(-dev - MIN_CONTRAST, 0, None).sum())
    lighter = float(np.clip(dev - MIN_CONTRAST, 0, None).sum())
    dark_ink = darker >= lighter
    k = int(min(gray.size, max(4, gray.size // 1000)))  # the k-th strongest pixel: one hot pixel sets nothing
    if float(np.partition(gray.ravel(), gray.size - k)[gray.size - k]) < TOO_DARK:
        raise InputError(
            f"{name} is too dark to make out a glyph: take the photo in better light (turn a lamp towards the paper)"
        )
    if photo:  # judge the ink against the paper right around it, grain smoothed away
        from scipy import ndimage

        background = paper_background(gray, dark_ink)
        smooth = ndimage.gaussian_filter(gray, max(0.7, max(gray.shape) / 800), mode="nearest")
        ink = (background - smooth) / np.maximum(background, 0.05) if dark_ink else smooth - background
    else:
        ink = -dev if dark_ink else dev
    peak = float(np.partition(ink.ravel(), ink.size - k)[ink.size - k])
    if photo:
        grain = 1.4826 * float(np.median(np.abs(ink - np.median(ink))))
        if peak < max(MIN_CONTRAST, PHOTO_NOISE_SIGMAS * grain):
            raise _no_glyph_in_photo(name)
    elif peak < MIN_CONTRAST:
        raise InputError(f"{name} is blank: there is no glyph on it, draw or upload one first")
    return ink, peak, photo


def _no_glyph_in_photo(name: str) -> InputError:
    return InputError(
        f"{name} shows no clear glyph, only paper texture or noise: draw the glyph with a dark pen or marker "
        "and fill about half the frame with it"
    )


def grain(gray: np.ndarray) -> float:
    """The picture's pixel-to-pixel noise: a robust deviation of what a 1-px blur removes. Strokes
    change only the pixels along their edges, so a clean drawing or scan reads about 0."""
    from scipy import ndimage

    detail = gray - ndimage.gaussian_filter(gray, 1.0, mode="nearest")
    return 1.4826 * float(np.median(np.abs(detail - np.median(detail))))


def _strokes(mask: np.ndarray, off_the_edge: bool) -> np.ndarray:
    """The mask less its blobs under SPECK_SHARE of the ink (grain, dust), and with ``off_the_edge``
    those touching the picture's edge (a photo's shadow narrowing into a corner, the table beyond the paper)."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask
    areas = np.bincount(labels.ravel())
    keep = areas >= SPECK_SHARE * areas[1:].sum()
    if off_the_edge:
        keep[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = False
    keep[0] = False
    return keep[labels]


def _source_to_image(source: Any, name: str, max_pixels: int) -> Image.Image:
    if isinstance(source, Image.Image):
        if source.width * source.height > max_pixels:
            raise InputError(f"{name} is too large: {source.width}x{source.height} pixels")
        try:
            if getattr(source, "is_animated", False):
                raise InputError(f"{name} is an animation; upload a single still image of the glyph")
            source.load()
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"{name} is damaged or truncated: it cannot be read completely") from exc
        return source
    if isinstance(source, np.ndarray):
        return _array_to_image(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(source, name, max_pixels=max_pixels)
    if hasattr(source, "read"):  # an open file or an uploaded-file object (Streamlit's has .name)
        if name == DEFAULT_NAME and isinstance(getattr(source, "name", None), str):
            name = source.name
        return decode_image(source.read(MAX_FILE_BYTES + 1), name, max_pixels=max_pixels)
    raise InputError(f"{name}: expected a file's bytes, a PIL image or a numpy array, got {type(source).__name__}")


def preprocess_image(source: Any, name: str = DEFAULT_NAME, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A drawing or picture of one glyph -> 28x28 uint8, ink = 255, framed like Omniglot.

    ``source``: a file's bytes (PNG, JPEG, WebP, GIF, BMP), an open binary file, a PIL image, or a
    numpy array (HxW grey, HxWx3 RGB, HxWx4 RGBA such as a drawing canvas's ``image_data``, where
    transparent pixels are background). ``name`` is used in error messages. Raises InputError.
    """
    img = _source_to_image(source, name, max_pixels)
    w0, h0 = img.size
    if min(w0, h0) < MIN_SIDE:
        raise InputError(f"{name} is too small ({w0}x{h0} pixels); use at least {MIN_SIDE}x{MIN_SIDE}")
    try:
        gray = image_to_gray(img)
    except InputError:
        raise
    except Exception as exc:  # an exotic mode PIL cannot convert
        raise InputError(f"{name} uses an image mode we cannot read ({img.mode})") from exc
    h, w = gray.shape
    # Sensor noise puts single pixels past half the ink level, which would read as specks of ink all
    # over the glyph: smooth them away first. A drawing or a clean scan has none and is left as it is.
    noisy = grain(gray) > NOISY_GRAIN
    if noisy:
        from scipy import ndimage

        gray = ndimage.gaussian_filter(gray, 1.0, mode="nearest")

    if float(gray.max()) - float(gray.min()) < MIN_CONTRAST:
        if float(gray.mean()) < 0.25:
            raise InputError(f"{name} is entirely dark: there is no glyph to see, draw it in a contrasting colour")
        raise InputError(f"{name} is blank: there is no glyph on it, draw or upload one first")

    ink, peak, photo = _ink_map(gray, name)
    mask = ink > 0.5 * peak  # faint background noise stays below half the ink level
    if photo or noisy:
        mask = _strokes(mask, off_the_edge=photo)
        if photo and not mask.any():
            raise _no_glyph_in_photo(name)
    fraction = float(mask.mean())
    if fraction > MAX_INK_FRACTION:
        raise InputError(
            f"{name} is almost entirely ink ({fraction:.0%} of it): it should show one glyph on a plain "
            "background; crop it to the glyph or draw on an empty canvas"
        )
    mask_width = _stroke_width(mask)
    if fraction > NOISE_INK_FRACTION and mask_width < NOISE_STROKE_WIDTH and _pieces(mask) >= NOISE_MIN_SPECKS:
        raise InputError(
            f"{name} looks like noise or a texture, not a glyph: use a picture of one glyph on a plain background"
        )
    clusters = ink_clusters(mask)
    glyphs = sum(c[0] >= GLYPH_SHARE * clusters[0][0] for c in clusters)  # as glyph_count(mask)
    if glyphs > 1:
        raise InputError(
            f"{name} shows {glyphs} glyphs side by side: use one glyph at a time (for a photo, one glyph "
            "filling about half the frame)"
        )
    if photo and clusters:  # small marks far from the glyph (a shadow's edge, a smudge) are not part of it
        top, bottom, left, right = clusters[0][1]
        keep = np.zeros_like(mask)
        keep[top : bottom + 1, left : right + 1] = True
        mask &= keep
    soft = np.clip((ink / peak - 0.25) * 2.0, 0.0, 1.0)  # 0 below a quarter, 1 above 3/4 of peak
    if photo:  # keep the strokes' soft edges, not the grain around them
        from scipy import ndimage

        soft *= ndimage.binary_dilation(mask, iterations=2)

    # Frame: a square around the (trimmed) bounding box, box = OMNIGLOT_BBOX_FRACTION of it.
    y0, y1, x0, x1 = _extent(mask)
    # The strokes get redrawn at Omniglot's width, so fit the box of the stroke centres: the
    # box less one stroke width, here and in Omniglot.
    long_side = max(y1 - y0 + 1, x1 - x0 + 1)
    src_width = min(mask_width, 0.5 * long_side)
    centre_fraction = OMNIGLOT_BBOX_FRACTION - WORK_STROKE_WIDTH / WORK_SIZE
    size = max(1, round((long_side - src_width) / centre_fraction))
    fy, fx = round((y0 + y1 + 1 - size) / 2), round((x0 + x1 + 1 - size) / 2)
    frame = np.zeros((size, size), dtype=np.float32)
    sy0, sy1, sx0, sx1 = max(fy, 0), min(fy + size, h), max(fx, 0), min(fx + size, w)
    frame[sy0 - fy : sy1 - fy, sx0 - fx : sx1 - fx] = soft[sy0:sy1, sx0:sx1]

    # Redraw at the working size. Shrinking averages (BOX), so a stroke thinner than a working
    # pixel turns faint: lower the threshold to the coverage such a stroke leaves.
    scale = WORK_SIZE / size
    resample = Image.Resampling.BOX if size > WORK_SIZE else Image.Resampling.BILINEAR
    work = np.asarray(Image.fromarray(frame).resize((WORK_SIZE, WORK_SIZE), resample))
    threshold = 0.5 * min(1.0, 0.8 * src_width * scale)
    work_mask = work >= max(threshold, 0.02)
    if not work_mask.any():
        raise InputError(f"{name} is blank: there is no glyph on it, draw or upload one first")
    work_mask = _normalise_stroke(work_mask, WORK_STROKE_WIDTH)

    small = Image.fromarray(work_mask.astype(np.uint8) * 255).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    return np.array(small, dtype=np.uint8)


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """28x28 uint8 images (ink = 255) -> float tensor [n, 1, 28, 28] in [0, 1], ink = 1."""
    arrays = []
    for i, img in enumerate(images):
        arr = np.asarray(img)
        if arr.shape != (IMAGE_SIZE, IMAGE_SIZE) or arr.dtype != np.uint8:
            raise InputError(
                f"image {i + 1} is {arr.dtype} {arr.shape}, expected uint8 ({IMAGE_SIZE}, {IMAGE_SIZE}): "
                "run it through preprocess_image first"
            )
        arrays.append(arr)
    if not arrays:
        return torch.zeros((0, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.float32)
    stacked = torch.from_numpy(np.stack(arrays)).to(torch.float32) / 255.0
    return stacked.unsqueeze(1)


def from_tensor(x: torch.Tensor) -> list[np.ndarray]:
    """The inverse of `to_tensor`: images [n, 1, 28, 28] (ink = 1) as 28x28 uint8 arrays (ink = 255)."""
    return list((x.detach().cpu()[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())

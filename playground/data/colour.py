"""What the colour datasets share: their decoded form, its cache, and reading one image file."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from playground.data.omniglot import DataError, default_cache_dir, read_npz, write_npz

CACHE_VERSION = 1


@dataclass
class ColourClasses:
    """Every class of a colour dataset: images[c, d] is image d of class c ([3, H, W] uint8)."""

    images: np.ndarray  # [C, D, 3, H, W] uint8
    names: list[str]
    splits: list[str]  # per class: "train", "val" or "test"

    def indices(self, split: str) -> np.ndarray:
        return np.asarray([i for i, s in enumerate(self.splits) if s == split], dtype=np.int64)


def read_image(path: Path, size: int, data: bytes | None = None) -> np.ndarray:
    """An image file as [3, size, size] uint8: the centre square, resized with antialiasing (LANCZOS)."""
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as img:
            img = img.convert("RGB")
            w, h = img.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side))
            if side != size:
                img = img.resize((size, size), Image.Resampling.LANCZOS)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read the image {path} ({exc}); replace the file or download the data again") from exc


def stack_classes(per_class: dict[str, list[np.ndarray]], source: Path, hint: str) -> tuple[np.ndarray, list[str]]:
    """Classes of equally many images -> [C, D, 3, H, W]; a DataError naming a class with another count."""
    if not per_class:
        raise DataError(f"{source} holds no images. {hint}")
    names = sorted(per_class)
    counts = {name: len(per_class[name]) for name in names}
    expected = max(counts.values())
    short = [f"{name} ({counts[name]})" for name in names if counts[name] != expected]
    if short:
        raise DataError(
            f"{source}: every class should have {expected} images, but {', '.join(short[:5])} "
            f"{'do' if len(short) > 1 else 'does'} not; the data is incomplete. {hint}"
        )
    return np.stack([np.stack(per_class[name]) for name in names]), names


def fingerprint(sources: Iterable[Path], *salt: object) -> str:
    """A key for the decoded images: the sources' paths, sizes and modification times, and ``salt``."""
    h = hashlib.sha256(f"v{CACHE_VERSION}|{'|'.join(map(str, salt))}".encode())
    for s in sorted(sources):
        st = s.stat()
        h.update(f"{s.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cached(
    kind: str, key: str, build: Callable[[], ColourClasses], cache_dir: str | Path | None = None
) -> ColourClasses:
    """``build()``'s classes, decoded once and kept as ``<cache>/<kind>-<key>.npz`` (rebuilt if unreadable)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache_dir / f"{kind}-{key}.npz"
    z = read_npz(cache_file)
    if z is not None:
        return ColourClasses(z["images"], z["names"].tolist(), z["splits"].tolist())
    data = build()
    write_npz(cache_file, images=data.images, names=np.asarray(data.names), splits=np.asarray(data.splits))
    return data

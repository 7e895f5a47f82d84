"""Omniglot: read the official layout (folder tree or zips), preprocess to 28x28, cache."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SIZE = 28
DRAWINGS_PER_CHARACTER = 20
SETS = ("images_background", "images_evaluation")
CACHE_VERSION = 1

DOWNLOAD_HINT = (
    "Omniglot was not found. Point --data-dir (or $PLAYGROUND_DATA) at a folder holding "
    "images_background/ and images_evaluation/ (or images_background.zip and "
    "images_evaluation.zip). On a machine with internet, `python -m playground download` "
    "fetches them (and the app offers a download button)."
)


class DataError(RuntimeError):
    """The dataset is missing or unreadable; the message names the file and the fix."""


def default_data_dir() -> Path:
    """$PLAYGROUND_DATA, else ../shared/data/omniglot beside the project, else ./data/omniglot."""
    env = os.environ.get("PLAYGROUND_DATA")
    if env:
        return Path(env)
    project = Path(__file__).resolve().parents[2]
    shared = project.parent / "shared" / "data" / "omniglot"
    if shared.exists():
        return shared
    return project / "data" / "omniglot"


def default_cache_dir() -> Path:
    env = os.environ.get("PLAYGROUND_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "meta-learning-playground"


def preprocess_omniglot_image(img: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """105x105 white-background PNG -> size x size uint8, ink = 255, antialiased (box filter)."""
    gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    ink = Image.fromarray(((1.0 - gray) * 255.0).astype(np.uint8))
    # BOX averages every source pixel into the target: the antialiased area downsampling.
    small = ink.resize((size, size), Image.Resampling.BOX)
    return np.array(small, dtype=np.uint8)


@dataclass
class Omniglot:
    """All characters of both sets: images[c, d] is drawing d of character c (uint8, ink=255)."""

    images: np.ndarray  # [C, 20, 28, 28] uint8
    alphabets: list[str]  # per character
    characters: list[str]  # per character, e.g. "character01"
    sets: list[str]  # per character: "images_background" or "images_evaluation"

    def __len__(self) -> int:
        return len(self.characters)

    def names(self) -> list[str]:
        return [f"{a}/{c}" for a, c in zip(self.alphabets, self.characters)]

    def indices(self, set_name: str | None = None, alphabets: set[str] | None = None) -> np.ndarray:
        keep = [
            i
            for i in range(len(self))
            if (set_name is None or self.sets[i] == set_name) and (alphabets is None or self.alphabets[i] in alphabets)
        ]
        return np.asarray(keep, dtype=np.int64)

    def alphabet_names(self, set_name: str) -> list[str]:
        return sorted({a for a, s in zip(self.alphabets, self.sets) if s == set_name})


def _source_of(data_dir: Path, set_name: str) -> Path:
    """The folder tree if present, else the zip; DataError naming both when neither exists."""
    for candidate in (data_dir / set_name, data_dir / "omniglot-py" / set_name):
        if candidate.is_dir():
            return candidate
    for candidate in (data_dir / f"{set_name}.zip", data_dir / "omniglot-py" / f"{set_name}.zip"):
        if candidate.is_file():
            return candidate
    raise DataError(f"missing {data_dir / set_name} (or {set_name}.zip). {DOWNLOAD_HINT}")


def _iter_pngs(source: Path, set_name: str):
    """Yield (alphabet, character, filename, bytes) sorted, from a folder tree or a zip."""
    if source.is_dir():
        for path in sorted(source.glob("*/*/*.png")):
            yield path.parts[-3], path.parts[-2], path.name, path.read_bytes()
        return
    try:
        with zipfile.ZipFile(source) as zf:
            names = sorted(n for n in zf.namelist() if n.endswith(".png"))
            for name in names:
                parts = name.split("/")
                if len(parts) != 4 or parts[0] != set_name:
                    continue
                yield parts[1], parts[2], parts[3], zf.read(name)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{source} is not a readable zip ({exc}); download it again.") from exc


def _read_set(source: Path, set_name: str) -> tuple[list[np.ndarray], list[str], list[str]]:
    grouped: dict[tuple[str, str], list[np.ndarray]] = {}
    for alphabet, character, filename, data in _iter_pngs(source, set_name):
        try:
            with Image.open(io.BytesIO(data)) as img:
                arr = preprocess_omniglot_image(img)
        except Exception as exc:  # PIL raises many types for a broken file
            raise DataError(f"cannot read {source}:{alphabet}/{character}/{filename} ({exc})") from exc
        grouped.setdefault((alphabet, character), []).append(arr)
    if not grouped:
        raise DataError(f"{source} holds no Omniglot PNGs. {DOWNLOAD_HINT}")
    stacks, alphabets, characters = [], [], []
    for (alphabet, character), drawings in sorted(grouped.items()):
        if len(drawings) != DRAWINGS_PER_CHARACTER:
            raise DataError(
                f"{source}: {alphabet}/{character} has {len(drawings)} drawings, expected "
                f"{DRAWINGS_PER_CHARACTER}; the dataset is incomplete, download it again."
            )
        stacks.append(np.stack(drawings))
        alphabets.append(alphabet)
        characters.append(character)
    return stacks, alphabets, characters


def _fingerprint(sources: list[Path]) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for s in sources:
        st = s.stat()
        h.update(f"{s.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def read_npz(cache_file: Path) -> dict[str, np.ndarray] | None:
    """A cache's arrays, or None when it is absent or unreadable (a truncated cache is removed, never trusted)."""
    if not cache_file.exists():
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:
        cache_file.unlink(missing_ok=True)
        return None


def write_npz(cache_file: Path, **arrays: np.ndarray) -> None:
    """Keep ``arrays`` as ``cache_file``, atomically (a reader never sees half a cache); a read-only dir only costs speed."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, cache_file)
    except OSError:
        pass


def load_omniglot(data_dir: str | Path | None = None, cache_dir: str | Path | None = None) -> Omniglot:
    """Load both sets, preprocessing once and caching to an .npz keyed by the sources."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    sources = [_source_of(data_dir, s) for s in SETS]
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache_dir / f"omniglot28-{_fingerprint(sources)}.npz"
    z = read_npz(cache_file)
    if z is not None:
        return Omniglot(
            images=z["images"],
            alphabets=z["alphabets"].tolist(),
            characters=z["characters"].tolist(),
            sets=z["sets"].tolist(),
        )
    stacks, alphabets, characters, sets = [], [], [], []
    for set_name, source in zip(SETS, sources):
        s, a, c = _read_set(source, set_name)
        stacks += s
        alphabets += a
        characters += c
        sets += [set_name] * len(c)
    data = Omniglot(np.stack(stacks), alphabets, characters, sets)
    write_npz(
        cache_file,
        images=data.images,
        alphabets=np.asarray(alphabets),
        characters=np.asarray(characters),
        sets=np.asarray(sets),
    )
    return data


def omniglot_available(data_dir: str | Path | None = None) -> bool:
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    try:
        for s in SETS:
            _source_of(data_dir, s)
    except DataError:
        return False
    return True

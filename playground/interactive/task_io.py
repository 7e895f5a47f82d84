"""A user-built few-shot task (classes of drawn or uploaded glyphs) and its zip export/import.

The zip holds ``task.json`` and one PNG per example, 28x28, dark ink on white like Omniglot::

    task.json                 {"format": "meta-learning-playground/task", "version": 1,
                               "classes": [{"name": "alpha", "files": ["class_00/example_00.png"]}, ...]}
    class_00/example_00.png
    ...

Import never writes to disk: entries are read in memory, after checking their names (no ``..``,
absolute paths, backslashes, drive letters, links) and sizes (entry count, total and per-entry
uncompressed size, compression ratio, pixels decoded in all). Every problem is an InputError
saying what is wrong.
28x28 PNGs are taken as they are (exact round trip); other sizes go through preprocess_image, so
a hand-made zip of Omniglot-style 105x105 drawings imports too.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from playground.interactive.imaging import (
    IMAGE_SIZE,
    MAX_FILE_BYTES,
    InputError,
    decode_image,
    image_to_gray,
    preprocess_image,
    to_tensor,
)

FORMAT = "meta-learning-playground/task"
VERSION = 1
MANIFEST = "task.json"

MAX_CLASSES = 20
# One limit for every way examples arrive (drawing, upload, sampling, import) and for display:
# the app is about learning from one to five examples.
MAX_EXAMPLES_PER_CLASS = 5
MAX_NAME_LENGTH = 100
MAX_ZIP_BYTES = 20 * 1024 * 1024  # the zip file itself
MAX_TOTAL_UNCOMPRESSED = 20 * 1024 * 1024  # all entries together, as declared and as read
MAX_ENTRIES = 2000
MAX_MANIFEST_BYTES = 1024 * 1024
# The decoding work of one whole import, not just of each image: 400 tiny PNGs of 40 megapixels
# each would otherwise cost tens of seconds of server CPU. A task of 100 Omniglot-sized drawings
# decodes about 1 megapixel.
MAX_IMPORT_PIXELS = 50_000_000
MAX_COMPRESSION_RATIO = 100  # for entries over RATIO_CHECK_BYTES; real PNGs barely compress
RATIO_CHECK_BYTES = 64 * 1024

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same task always gives the same bytes
_DRIVE = re.compile(r"^[A-Za-z]:")
_S_IFMT, _S_IFLNK, _S_IFREG, _S_IFDIR = 0o170000, 0o120000, 0o100000, 0o040000


def _example_problem(arr: object) -> str | None:
    if not isinstance(arr, np.ndarray):
        return f"is a {type(arr).__name__}, not an image array"
    if arr.shape != (IMAGE_SIZE, IMAGE_SIZE) or arr.dtype != np.uint8:
        return f"is {arr.dtype} {arr.shape}, not a {IMAGE_SIZE}x{IMAGE_SIZE} uint8 image"
    return None


@dataclass
class UserTask:
    """Named classes, each with its examples (28x28 uint8 images, ink = 255)."""

    class_names: list[str] = field(default_factory=list)
    examples: list[list[np.ndarray]] = field(default_factory=list)

    @property
    def n_way(self) -> int:
        return len(self.class_names)

    @property
    def shots(self) -> list[int]:
        return [len(e) for e in self.examples]

    def problems(self) -> list[str]:
        """What stops this task from being used, in plain words; empty when it is ready."""
        out: list[str] = []
        if len(self.class_names) != len(self.examples):
            out.append(f"the task has {len(self.class_names)} class names but {len(self.examples)} lists of examples")
        if self.n_way < 2:
            out.append(f"a task needs at least 2 classes; this one has {self.n_way}")
        if self.n_way > MAX_CLASSES:
            out.append(f"a task can have at most {MAX_CLASSES} classes; this one has {self.n_way}")
        seen: dict[str, int] = {}
        for i, name in enumerate(self.class_names):
            if not isinstance(name, str) or not name.strip():
                out.append(f"class {i + 1} has no name")
                continue
            if len(name) > MAX_NAME_LENGTH:
                out.append(f"the name of class {i + 1} is too long (at most {MAX_NAME_LENGTH} characters)")
            key = name.strip().casefold()
            if key in seen:
                out.append(f"classes {seen[key] + 1} and {i + 1} have the same name '{name.strip()}'")
            else:
                seen[key] = i
        for i, examples in enumerate(self.examples):
            label = self._label(i)
            if len(examples) == 0:
                out.append(f"{label} has no examples: draw or upload at least one")
            if len(examples) > MAX_EXAMPLES_PER_CLASS:
                out.append(f"{label} has {len(examples)} examples; at most {MAX_EXAMPLES_PER_CLASS} are allowed")
            for j, arr in enumerate(examples):
                problem = _example_problem(arr)
                if problem:
                    out.append(f"example {j + 1} of {label} {problem}")
        return out

    @property
    def is_ready(self) -> bool:
        return not self.problems()

    def support(self) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """The support set: x [n, 1, 28, 28] float (ink = 1), y [n] long class indices, names."""
        problems = self.problems()
        if problems:
            raise InputError("the task is not ready: " + "; ".join(problems))
        x = to_tensor([arr for examples in self.examples for arr in examples])
        y = torch.tensor([i for i, examples in enumerate(self.examples) for _ in examples], dtype=torch.long)
        return x, y, list(self.class_names)

    def add_example(self, cls: int, image: np.ndarray) -> None:
        """Add one example to class ``cls``; InputError when the class is full or the image is wrong."""
        if not 0 <= cls < self.n_way:
            raise InputError(f"there is no class {cls + 1}: the task has {self.n_way}")
        problem = _example_problem(image)
        if problem:
            raise InputError(f"the new example {problem}")
        if len(self.examples[cls]) >= MAX_EXAMPLES_PER_CLASS:
            raise InputError(
                f"{self._label(cls)} already has {MAX_EXAMPLES_PER_CLASS} examples, the most a class can have"
            )
        self.examples[cls].append(image)

    def room(self, cls: int) -> int:
        """How many more examples class ``cls`` can take."""
        return max(0, MAX_EXAMPLES_PER_CLASS - len(self.examples[cls]))

    def add_class(self) -> str:
        """Add an empty class with the first free letter as its name; returns the name."""
        if self.n_way >= MAX_CLASSES:
            raise InputError(f"a task can have at most {MAX_CLASSES} classes")
        used = {n.strip().casefold() for n in self.class_names}
        candidates = (chr(65 + i) if i < 26 else f"class {i + 1}" for i in range(MAX_CLASSES + 26))
        name = next(c for c in candidates if c.casefold() not in used)
        self.class_names.append(name)
        self.examples.append([])
        return name

    def _label(self, i: int) -> str:
        name = self.class_names[i] if i < len(self.class_names) else None
        return f"class '{name}'" if isinstance(name, str) and name.strip() else f"class {i + 1}"


# --------------------------------------------------------------------------- export


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(255 - arr).save(buf, format="PNG")  # dark ink on white, like Omniglot
    return buf.getvalue()


def export_task_zip(task: UserTask) -> bytes:
    """The task as zip bytes (task.json + 28x28 PNGs). Incomplete tasks export too (problems()
    tells what is missing); malformed ones raise InputError."""
    if len(task.class_names) != len(task.examples):
        raise InputError(f"the task has {len(task.class_names)} class names but {len(task.examples)} lists of examples")
    if task.n_way > MAX_CLASSES:
        raise InputError(f"a task can have at most {MAX_CLASSES} classes; this one has {task.n_way}")
    classes = []
    entries: list[tuple[str, bytes]] = []
    for i, (name, examples) in enumerate(zip(task.class_names, task.examples)):
        if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
            raise InputError(f"class {i + 1} needs a name of at most {MAX_NAME_LENGTH} characters")
        if len(examples) > MAX_EXAMPLES_PER_CLASS:
            raise InputError(
                f"class {i + 1} has {len(examples)} examples; at most {MAX_EXAMPLES_PER_CLASS} are allowed"
            )
        files = []
        for j, arr in enumerate(examples):
            problem = _example_problem(arr)
            if problem:
                raise InputError(f"example {j + 1} of class {i + 1} {problem}")
            path = f"class_{i:02d}/example_{j:02d}.png"
            files.append(path)
            entries.append((path, _png(arr)))
        classes.append({"name": name, "files": files})
    manifest = {"format": FORMAT, "version": VERSION, "image_size": IMAGE_SIZE, "ink": "dark", "classes": classes}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path, data in [(MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False).encode())] + entries:
            info = zipfile.ZipInfo(path, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (_S_IFREG | 0o644) << 16
            zf.writestr(info, data)
    return buf.getvalue()


# --------------------------------------------------------------------------- import


def _unsafe_path(path: str) -> str | None:
    """Why a path inside the zip is unsafe to use, or None."""
    if not path:
        return "an empty name"
    if "\x00" in path:
        return "a NUL character"
    if "\\" in path:
        return "a backslash"
    if path.startswith("/"):
        return "an absolute path"
    if _DRIVE.match(path):
        return "a drive letter"
    if any(part in ("", ".", "..") for part in path.removesuffix("/").split("/")):
        return "'..', '.' or an empty folder name (path traversal)"
    return None


def _check_entries(zf: zipfile.ZipFile, name: str) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise InputError(f"{name} has {len(infos)} entries; a task zip has at most {MAX_ENTRIES}")
    entries: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        path = info.filename
        for candidate in {path, info.orig_filename}:
            reason = _unsafe_path(candidate)
            if reason:
                raise InputError(f"{name} contains an unsafe path {candidate!r} ({reason}); it was refused")
        kind = (info.external_attr >> 16) & _S_IFMT
        if kind == _S_IFLNK:
            raise InputError(f"{name} contains a symlink ({path}); links are refused")
        if kind not in (0, _S_IFREG, _S_IFDIR):
            raise InputError(f"{name} contains a special file ({path}); only files and folders are allowed")
        if info.flag_bits & 0x1:
            raise InputError(f"{name} is password-protected ({path} is encrypted); export it again without a password")
        if path in entries:
            raise InputError(f"{name} contains the entry {path} twice (duplicate names are refused)")
        entries[path] = info
        total += info.file_size
        if total > MAX_TOTAL_UNCOMPRESSED:
            raise InputError(
                f"{name} unpacks to more than {MAX_TOTAL_UNCOMPRESSED / 1e6:.0f} MB; too large for a task "
                "(possibly a zip bomb)"
            )
        if info.file_size > RATIO_CHECK_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(1, info.compress_size):
            raise InputError(f"{name}: {path} is compressed suspiciously well (a zip bomb?); refused")
    return entries


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, name: str) -> bytes:
    if info.file_size > limit:
        raise InputError(f"{name}: {info.filename} is too large ({info.file_size / 1e6:.1f} MB)")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except Exception as exc:  # BadZipFile (CRC, header), zlib.error, NotImplementedError, EOFError, ...
        raise InputError(f"{name}: {info.filename} is damaged inside the zip and cannot be read") from exc
    if len(data) > limit or len(data) != info.file_size:
        raise InputError(f"{name}: {info.filename} does not have the size the zip declares; the zip is damaged")
    return data


def _parse_manifest(raw: bytes, where: str) -> list[tuple[str, list[str]]]:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"{where} is not valid JSON; the task file is damaged") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputError(
            f"{where} does not have the format marker {FORMAT!r}: this zip is not a task exported by "
            "the meta-learning playground"
        )
    version = obj.get("version")
    if type(version) is not int or version < 1:
        raise InputError(f"{where} has no valid format version")
    if version > VERSION:
        raise InputError(f"{where} uses format version {version}; this app reads version {VERSION}: update the app")
    classes = obj.get("classes")
    if not isinstance(classes, list):
        raise InputError(f"{where} has no list of classes")
    if not classes:
        raise InputError(f"{where} has no classes; a task needs at least 2")
    if len(classes) > MAX_CLASSES:
        raise InputError(f"{where} has {len(classes)} classes; at most {MAX_CLASSES} are allowed")
    out = []
    for i, c in enumerate(classes):
        if not isinstance(c, dict):
            raise InputError(f"{where}: class {i + 1} is not described properly (expected name and files)")
        cname, files = c.get("name"), c.get("files")
        if not isinstance(cname, str) or len(cname) > MAX_NAME_LENGTH:
            raise InputError(f"{where}: class {i + 1} needs a name of at most {MAX_NAME_LENGTH} characters")
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise InputError(f"{where}: class {i + 1} ('{cname}') needs a list of file names")
        if len(files) > MAX_EXAMPLES_PER_CLASS:
            raise InputError(
                f"{where}: class {i + 1} ('{cname}') has {len(files)} examples; at most "
                f"{MAX_EXAMPLES_PER_CLASS} are allowed"
            )
        out.append((cname, files))
    return out


def _header_pixels(data: bytes) -> int:
    """Width x height from the image's header, without decoding it (0 when unreadable: decoding
    then says what is wrong)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            width, height = Image.open(io.BytesIO(data)).size
    except Exception:
        return 0
    return width * height


def _example_from_png(data: bytes, path: str) -> np.ndarray:
    img = decode_image(data, path)
    if img.size != (IMAGE_SIZE, IMAGE_SIZE):
        return preprocess_image(img, path)  # a hand-made zip with larger drawings
    if img.mode == "L":
        return 255 - np.asarray(img, dtype=np.uint8)  # our own export: exact
    try:
        gray = image_to_gray(img)
    except Exception as exc:
        raise InputError(f"{path} uses an image mode we cannot read ({img.mode})") from exc
    return np.rint((1.0 - gray) * 255.0).astype(np.uint8)


def import_task_zip(data: bytes, name: str = "the task file") -> UserTask:
    """Read a zip made by export_task_zip (or by hand in the same layout) into a UserTask.

    Raises InputError for anything that is not such a zip or that is unsafe to unpack. The task
    may still be incomplete (e.g. one class): check ``problems()``.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"{name} is not a file's contents (got {type(data).__name__})")
    data = bytes(data)
    if len(data) > MAX_ZIP_BYTES:
        raise InputError(
            f"{name} is too large ({len(data) / 1e6:.1f} MB); a task zip is at most {MAX_ZIP_BYTES / 1e6:.0f} MB"
        )
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # BadZipFile, LargeZipFile, ValueError, OSError, EOFError, ...
        raise InputError(f"{name} is not a zip file (or it is damaged): export the task again") from exc
    with zf:
        entries = _check_entries(zf, name)
        prefix = ""
        if MANIFEST not in entries:  # tolerate a zip of the task's folder: one top-level folder
            nested = [p for p in entries if p.count("/") == 1 and p.endswith("/" + MANIFEST)]
            if len(nested) != 1:
                raise InputError(f"{name} has no {MANIFEST}: it is not a task exported by the meta-learning playground")
            prefix = nested[0][: -len(MANIFEST)]
        manifest = prefix + MANIFEST
        classes = _parse_manifest(_read_entry(zf, entries[manifest], MAX_MANIFEST_BYTES, name), manifest)
        task = UserTask()
        listed: set[str] = set()
        pixels = 0
        for cname, files in classes:
            examples = []
            for f in files:
                reason = _unsafe_path(f)
                if reason:
                    raise InputError(f"{manifest} lists an unsafe path {f!r} ({reason}); it was refused")
                path = prefix + f
                if path in listed:
                    raise InputError(f"{manifest} lists {f} twice")
                listed.add(path)
                info = entries.get(path)
                if info is None or info.is_dir():
                    raise InputError(f"{manifest} lists {f} (class '{cname}') but the zip does not contain it: missing")
                raw = _read_entry(zf, info, MAX_FILE_BYTES, name)
                pixels += _header_pixels(raw)
                if pixels > MAX_IMPORT_PIXELS:
                    raise InputError(
                        f"{name} holds images of more than {MAX_IMPORT_PIXELS / 1e6:g} megapixels in all (reached at "
                        f"{path}); a task's images must be smaller: export the task again, or save the images "
                        "smaller"
                    )
                examples.append(_example_from_png(raw, path))
            task.class_names.append(cname)
            task.examples.append(examples)
    return task

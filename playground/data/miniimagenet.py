"""mini-ImageNet in Ravi & Larochelle's split (64 / 16 / 20 classes of 600 images, 84x84), from either
layout people have on disk:

images + CSVs
    ``images/`` holding every image and ``train.csv``, ``val.csv``, ``test.csv`` of ``filename,label``
    rows (with that header), as Ravi & Larochelle's split files list them. Each image is resized to 84x84.
pickles
    ``mini-imagenet-cache-train.pkl``, ``-val.pkl`` and ``-test.pkl``, each a dict with ``image_data``
    ([N, 84, 84, 3] uint8) and ``class_dict`` ({label: [indices into image_data]}), the files
    learn2learn and others read.

The pickles win when both are present. Decoded images are cached (`playground.data.colour.cached`).
"""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np

from playground.data.colour import ColourClasses, cached, fingerprint, read_image, stack_classes
from playground.data.omniglot import DataError

IMAGE_SIZE = 84
SPLITS = ("train", "val", "test")
PICKLE = "mini-imagenet-cache-{}.pkl"
HOW_TO_GET = (
    "mini-ImageNet is not downloaded by this project. Get either Ravi & Larochelle's images/ folder with "
    "train.csv, val.csv and test.csv (their split files, images made with their tool from ImageNet), or the "
    "pickles mini-imagenet-cache-{train,val,test}.pkl (as learn2learn uses), and pass their folder as --data-dir."
)


def layout(data_dir: Path) -> str:
    """ "pickles" or "csv", whichever is complete in ``data_dir``; a DataError naming what is missing otherwise."""
    pickles = [data_dir / PICKLE.format(s) for s in SPLITS]
    if all(p.is_file() for p in pickles):
        return "pickles"
    csvs = [data_dir / f"{s}.csv" for s in SPLITS]
    if all(p.is_file() for p in csvs) and (data_dir / "images").is_dir():
        return "csv"
    if any(p.is_file() for p in pickles):
        missing = [p for p in pickles if not p.is_file()]
    else:
        missing = [p for p in [*csvs, data_dir / "images"] if not p.exists()]
    raise DataError(f"missing {', '.join(map(str, missing))}. {HOW_TO_GET}")


def _read_pickle(path: Path, split: str) -> dict[str, list[np.ndarray]]:
    try:
        with path.open("rb") as f:
            data = pickle.load(f)  # noqa: S301 - the person's own dataset file, which they chose to read
        images, class_dict = data["image_data"], data["class_dict"]
        images = np.asarray(images, dtype=np.uint8)
    except Exception as exc:  # unpickling fails in many ways
        raise DataError(
            f"{path} is not a mini-ImageNet pickle with 'image_data' and 'class_dict' ({type(exc).__name__}: "
            f"{exc}); download it again. {HOW_TO_GET}"
        ) from exc
    if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise DataError(f"{path}: image_data is {list(images.shape)}, expected [N, 84, 84, 3]; download it again")
    out = {}
    for label, idx in class_dict.items():
        idx = np.asarray(sorted(idx), dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(images)):
            raise DataError(f"{path}: class {label} points past the {len(images)} images; download it again")
        out[str(label)] = list(images[idx].transpose(0, 3, 1, 2))
    return out


def _read_csv(data_dir: Path, split: str) -> dict[str, list[np.ndarray]]:
    path = data_dir / f"{split}.csv"
    out: dict[str, list[np.ndarray]] = {}
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != ["filename", "label"]:
        raise DataError(f"{path} should start with the header 'filename,label'; download the split files again")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise DataError(f"{path} line {line}: expected 'filename,label', got {row}")
        image = data_dir / "images" / row[0]
        if not image.is_file():
            raise DataError(f"missing {image} (listed in {path} line {line}). {HOW_TO_GET}")
        out.setdefault(row[1], []).append(read_image(image, IMAGE_SIZE))
    return out


def load_mini_imagenet(data_dir: str | Path, cache_dir: str | Path | None = None) -> ColourClasses:
    """All 100 classes with their split, from whichever layout ``data_dir`` holds."""
    data_dir = Path(data_dir)
    kind = layout(data_dir)
    if kind == "pickles":
        sources = [data_dir / PICKLE.format(s) for s in SPLITS]
    else:
        sources = [data_dir / f"{s}.csv" for s in SPLITS]

    def build() -> ColourClasses:
        stacks, names, splits = [], [], []
        for split, source in zip(SPLITS, sources):
            per_class = _read_pickle(source, split) if kind == "pickles" else _read_csv(data_dir, split)
            images, labels = stack_classes(per_class, source, HOW_TO_GET)
            stacks.append(images)
            names += labels
            splits += [split] * len(labels)
        counts = {s.shape[1] for s in stacks}
        if len(counts) > 1:
            raise DataError(f"{data_dir}: the splits have {sorted(counts)} images per class; the data is incomplete")
        return ColourClasses(np.concatenate(stacks), names, splits)

    # The CSV layout's images are not fingerprinted one by one (60,000 files): the CSVs and the folder's time are.
    extra = [] if kind == "pickles" else [data_dir / "images"]
    return cached("mini-imagenet84", fingerprint([*sources, *extra], kind), build, cache_dir)

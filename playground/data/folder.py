"""Any folder of images, one sub-folder per class: a person's own collection.

Images are read as RGB, cropped to their centre square and resized to ``IMAGE_SIZE`` x ``IMAGE_SIZE``.
Every class gives as many images as its smallest class has (the first by file name), since an episode
draws from equal classes; a class with fewer than ``MIN_IMAGES`` is refused.

Protocols:
seeded
    The class folders sorted by name and shuffled by ``random.Random(SPLIT_SEED)``; the first 60% (rounded
    down) are meta-train, the next 20% (rounded down) meta-validation, the rest meta-test. Needs at least
    5 classes, so that each part has one.
whole
    Every class is a meta-test class, for evaluating a model trained elsewhere; nothing to train on.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from playground.data.colour import ColourClasses, cached, fingerprint, read_image
from playground.data.omniglot import DataError

IMAGE_SIZE = 84
MIN_IMAGES = 2
SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.6, 0.2)  # meta-train, meta-validation; meta-test takes the rest
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
HOW_TO_GET = (
    "Point --data-dir at a folder with one sub-folder of images per class (e.g. photos/cats/*.jpg, photos/dogs/*.jpg)."
)


def class_folders(data_dir: Path) -> dict[str, list[Path]]:
    """Each class folder's image files, sorted; a DataError when the folder has no classes."""
    if not data_dir.is_dir():
        raise DataError(f"missing {data_dir}. {HOW_TO_GET}")
    classes = {
        d.name: sorted(p for p in d.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
        for d in sorted(data_dir.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }
    classes = {name: files for name, files in classes.items() if files}
    if len(classes) < 2:
        raise DataError(
            f"{data_dir} has {len(classes)} sub-folder(s) with images; few-shot needs 2 or more. {HOW_TO_GET}"
        )
    small = [f"{name} ({len(files)})" for name, files in classes.items() if len(files) < MIN_IMAGES]
    if small:
        raise DataError(f"{data_dir}: every class needs at least {MIN_IMAGES} images; {', '.join(small[:5])} has fewer")
    return classes


def seeded_split(names: list[str]) -> dict[str, str]:
    """Class name -> "train", "val" or "test", by the rule in the module's docstring."""
    order = sorted(names)
    random.Random(SPLIT_SEED).shuffle(order)
    n_train = int(len(order) * SPLIT_FRACTIONS[0])
    n_val = int(len(order) * SPLIT_FRACTIONS[1])
    if min(n_train, n_val, len(order) - n_train - n_val) < 1:
        raise DataError(
            f"the seeded split needs at least 5 classes (got {len(order)}); "
            "use --protocol whole to evaluate on every class instead"
        )
    return {n: "train" if i < n_train else "val" if i < n_train + n_val else "test" for i, n in enumerate(order)}


def load_folder(data_dir: str | Path, cache_dir: str | Path | None = None) -> ColourClasses:
    """Every class of the folder, marked with its `seeded_split`, or all "test" when there are too few to split."""
    data_dir = Path(data_dir)
    classes = class_folders(data_dir)
    per_class = min(len(files) for files in classes.values())
    chosen = {name: files[:per_class] for name, files in classes.items()}
    try:
        split = seeded_split(list(chosen))
    except DataError:
        split = dict.fromkeys(chosen, "test")

    def build() -> ColourClasses:
        names = sorted(chosen)
        images = np.stack([np.stack([read_image(p, IMAGE_SIZE) for p in chosen[name]]) for name in names])
        return ColourClasses(images, names, [split[name] for name in names])

    files = [p for f in chosen.values() for p in f]
    return cached(f"folder{IMAGE_SIZE}", fingerprint(files, SPLIT_SEED), build, cache_dir)

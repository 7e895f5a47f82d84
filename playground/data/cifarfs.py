"""CIFAR-FS (Bertinetto et al. 2019): CIFAR-100's 100 classes split 64 / 16 / 20, 600 images each (the
500 training and 100 test images of the class), 32x32, read from the standard ``cifar-100-python`` pickles.

The class lists are those of the authors' split files (github.com/bertinetto/r2d2), as torchmeta ships
them (torchmeta/datasets/assets/cifar100/cifar-fs/{train,val,test}.json), declared once here.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from playground.data.colour import ColourClasses, cached, fingerprint
from playground.data.omniglot import DataError

IMAGE_SIZE = 32
FILES = ("meta", "train", "test")
HOW_TO_GET = (
    "CIFAR-FS is built from CIFAR-100's python version: download cifar-100-python.tar.gz from "
    "https://www.cs.toronto.edu/~kriz/cifar.html (or with torchvision.datasets.CIFAR100), unpack it, and pass "
    "the folder holding cifar-100-python/ (or that folder itself) as --data-dir."
)

CIFAR_FS_SPLIT: dict[str, tuple[str, ...]] = {
    "train": (
        "dolphin", "seal", "aquarium_fish", "ray", "trout", "orchid", "sunflower", "tulip", "bottle", "bowl",
        "can", "cup", "plate", "apple", "mushroom", "orange", "pear", "clock", "keyboard", "chair", "couch",
        "bee", "caterpillar", "cockroach", "bear", "lion", "tiger", "wolf", "bridge", "castle", "house", "road",
        "skyscraper", "cloud", "forest", "mountain", "elephant", "kangaroo", "porcupine", "possum", "raccoon",
        "skunk", "lobster", "spider", "boy", "girl", "dinosaur", "lizard", "snake", "turtle", "hamster",
        "mouse", "rabbit", "shrew", "squirrel", "oak_tree", "palm_tree", "pine_tree", "willow_tree", "bus",
        "train", "lawn_mower", "streetcar", "tank",
    ),
    "val": (
        "beaver", "otter", "flatfish", "shark", "lamp", "television", "beetle", "butterfly", "sea", "camel",
        "cattle", "crab", "crocodile", "maple_tree", "motorcycle", "tractor",
    ),
    "test": (
        "whale", "poppy", "rose", "sweet_pepper", "telephone", "bed", "table", "wardrobe", "leopard", "plain",
        "chimpanzee", "fox", "snail", "worm", "baby", "man", "woman", "bicycle", "pickup_truck", "rocket",
    ),
}  # fmt: skip


def source_dir(data_dir: Path) -> Path:
    """The ``cifar-100-python`` folder in or at ``data_dir``; a DataError naming the missing file otherwise."""
    folder = data_dir / "cifar-100-python" if (data_dir / "cifar-100-python").is_dir() else data_dir
    if folder == data_dir and not (data_dir / "meta").is_file():
        folder = data_dir / "cifar-100-python"  # neither layout: name the usual one
    for name in FILES:
        if not (folder / name).is_file():
            raise DataError(f"missing {folder / name}. {HOW_TO_GET}")
    return folder


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return pickle.load(f, encoding="latin1")  # noqa: S301 - CIFAR's own format, a file the person chose
    except Exception as exc:  # unpickling fails in many ways
        raise DataError(
            f"{path} is not a readable CIFAR-100 pickle ({type(exc).__name__}: {exc}). {HOW_TO_GET}"
        ) from exc


def load_cifar_fs(data_dir: str | Path, cache_dir: str | Path | None = None) -> ColourClasses:
    """The 100 CIFAR-FS classes with their split; images [3, 32, 32], training images then test images."""
    folder = source_dir(Path(data_dir))

    def build() -> ColourClasses:
        meta = _unpickle(folder / "meta")
        label_names = list(meta.get("fine_label_names", []))
        wanted = [name for split in CIFAR_FS_SPLIT.values() for name in split]
        missing = [name for name in wanted if name not in label_names]
        if missing:
            raise DataError(
                f"{folder / 'meta'} lacks the classes {', '.join(missing[:5])}: not CIFAR-100. {HOW_TO_GET}"
            )
        per_class: dict[int, list[np.ndarray]] = {}
        for part in ("train", "test"):
            d = _unpickle(folder / part)
            try:
                data = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE)
                labels = np.asarray(d["fine_labels"], dtype=np.int64)
            except (KeyError, ValueError) as exc:
                raise DataError(f"{folder / part} lacks CIFAR-100's data or fine_labels ({exc}). {HOW_TO_GET}") from exc
            if len(labels) != len(data):
                raise DataError(f"{folder / part}: {len(data)} images but {len(labels)} labels. {HOW_TO_GET}")
            for label in np.unique(labels):
                per_class.setdefault(int(label), []).append(data[labels == label])
        stacks = {label: np.concatenate(parts) for label, parts in per_class.items()}
        counts = {label_names[label]: len(s) for label, s in stacks.items()}
        expected = max(counts.values())
        short = [f"{name} ({n})" for name, n in counts.items() if n != expected and name in wanted]
        if short or any(name not in counts for name in wanted):
            absent = [name for name in wanted if name not in counts]
            raise DataError(
                f"{folder}: classes with another number of images than {expected}: "
                f"{', '.join(short[:5] + [f'{n} (0)' for n in absent[:5]])}; the data is incomplete. {HOW_TO_GET}"
            )
        images, names, splits = [], [], []
        for split, classes in CIFAR_FS_SPLIT.items():
            for name in classes:
                images.append(stacks[label_names.index(name)])
                names.append(name)
                splits.append(split)
        return ColourClasses(np.stack(images), names, splits)

    return cached("cifar-fs32", fingerprint([folder / f for f in FILES]), build, cache_dir)

"""The datasets: each one's name, image shape, normalisation, protocols (splits) and where to get it,
declared once. The command line's choices, training and evaluation read them from here."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from playground.data import cifarfs, folder, miniimagenet, protocols
from playground.data.colour import ColourClasses
from playground.data.omniglot import DOWNLOAD_HINT, DataError, default_data_dir
from playground.data.protocols import PROTOCOLS as OMNIGLOT_PROTOCOLS
from playground.data.protocols import ClassDataset, Splits

Normalization = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    protocols: tuple[str, ...]  # the first is the default
    image_shape: tuple[int, int, int]  # [C, H, W]
    normalization: Normalization | None  # per-channel mean and std of [0, 1] values; None for glyphs
    how_to_get: str
    read: Callable[[Path], ColourClasses] | None = None  # colour datasets: every class with its split

    @property
    def colour(self) -> bool:
        return self.image_shape[0] == 3


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("omniglot", "Omniglot", OMNIGLOT_PROTOCOLS, (1, 28, 28), None, DOWNLOAD_HINT),
        Dataset(
            "mini-imagenet",
            "mini-ImageNet",
            ("ravi",),
            (3, miniimagenet.IMAGE_SIZE, miniimagenet.IMAGE_SIZE),
            # The mean and spread of mini-ImageNet's training pixels, as MetaOptNet's loader declares them.
            ((0.4721, 0.4533, 0.4100), (0.2772, 0.2677, 0.2845)),
            miniimagenet.HOW_TO_GET,
            miniimagenet.load_mini_imagenet,
        ),
        Dataset(
            "cifar-fs",
            "CIFAR-FS",
            ("bertinetto",),
            (3, cifarfs.IMAGE_SIZE, cifarfs.IMAGE_SIZE),
            ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),  # CIFAR-100's training pixels
            cifarfs.HOW_TO_GET,
            cifarfs.load_cifar_fs,
        ),
        Dataset(
            "folder",
            "a folder of images",
            ("seeded", "whole"),
            (3, folder.IMAGE_SIZE, folder.IMAGE_SIZE),
            ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # ImageNet's, for photos in general
            folder.HOW_TO_GET,
            folder.load_folder,
        ),
    )
}
DATASET_NAMES = tuple(DATASETS)
ALL_PROTOCOLS = tuple(p for d in DATASETS.values() for p in d.protocols)


def dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    return DATASETS[name]


def dataset_of_protocol(protocol: str) -> str:
    """The dataset a protocol splits ("ravi" -> "mini-imagenet")."""
    for d in DATASETS.values():
        if protocol in d.protocols:
            return d.name
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(ALL_PROTOCOLS)}")


def default_dir(name: str) -> Path:
    """Where a dataset is looked for without --data-dir: Omniglot's own rule; for the others
    $PLAYGROUND_DATA_<NAME> (e.g. PLAYGROUND_DATA_CIFAR_FS), else ../shared/data/<name> beside the project."""
    if name == "omniglot":
        return default_data_dir()
    env = os.environ.get("PLAYGROUND_DATA_" + name.upper().replace("-", "_"))
    if env:
        return Path(env)
    project = Path(__file__).resolve().parents[2]
    return project.parent / "shared" / "data" / name


def _class_dataset(data: ColourClasses, idx: np.ndarray, info: Dataset) -> ClassDataset:
    images = (
        torch.from_numpy(np.ascontiguousarray(data.images[idx]))
        if len(idx)
        else torch.zeros((0, data.images.shape[1], *data.images.shape[2:]), dtype=torch.uint8)
    )
    return ClassDataset(images, [data.names[i] for i in idx], info.normalization)


def load_dataset_splits(
    name: str, protocol: str | None = None, data_dir: str | Path | None = None, rotations: bool = True
) -> Splits:
    """A dataset's meta-train / val / test classes under ``protocol`` (default: the dataset's first)."""
    info = dataset(name)
    protocol = protocol or info.protocols[0]
    if protocol not in info.protocols:
        raise ValueError(f"--protocol {protocol} does not split {name}; its protocols: {', '.join(info.protocols)}")
    if info.read is None:
        return protocols.load_splits(protocol, data_dir, rotations=rotations)  # looked up here: tests replace it
    data_dir = Path(data_dir) if data_dir is not None else default_dir(name)
    data = info.read(data_dir)
    if protocol == "whole":
        everything = np.arange(len(data.names))
        empty = np.zeros(0, dtype=np.int64)
        return Splits(
            protocol,
            _class_dataset(data, empty, info),
            _class_dataset(data, empty, info),
            _class_dataset(data, everything, info),
        )
    if protocol == "seeded":
        split = folder.seeded_split(data.names)
        data = ColourClasses(data.images, data.names, [split[n] for n in data.names])
    return Splits(protocol, *(_class_dataset(data, data.indices(s), info) for s in ("train", "val", "test")))


__all__ = ["DATASETS", "DATASET_NAMES", "ALL_PROTOCOLS", "DataError", "Dataset", "load_dataset_splits"]

"""Named meta-train/val/test splits of Omniglot ("lake" and "vinyals").

lake
    Meta-train on the 30 *background* alphabets minus 5 held out for meta-validation
    (the sorted background alphabet list, positions 5, 11, 17, 23 and 29); meta-test on all
    659 characters of the 20 *evaluation* alphabets, unrotated. With ``rotations`` (the
    default for training) each training character also appears rotated by 90, 180 and 270
    degrees as three further classes. This is the protocol of Lake et al.: nothing of the
    evaluation alphabets is seen in training.

vinyals
    The 1200/423 character split of Vinyals et al. (2016) used by the MAML and ProtoNet
    papers, over all 50 alphabets: the 1623 characters sorted by "set/alphabet/character",
    shuffled by ``random.Random(1)`` (as MAML's reference code does), then the first 1100
    are meta-train, the next 100 meta-validation and the last 423 meta-test. Every split is
    augmented with the three 90-degree rotations as new classes (4400/400/1692 classes), as
    in the papers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from playground.data.omniglot import Omniglot, load_omniglot

PROTOCOLS = ("lake", "vinyals")
LAKE_VALIDATION_POSITIONS = (5, 11, 17, 23, 29)


@dataclass
class ClassDataset:
    """Few-shot classes: images[c, d] is drawing d of class c (uint8; glyphs [28, 28] with ink=255,
    colour images [3, H, W]). ``normalization`` (per-channel mean, std of [0, 1] values) is applied to
    every sampled image, for datasets that declare one (`playground.data.datasets`)."""

    images: torch.Tensor  # [C, D, 28, 28] or [C, D, 3, H, W] uint8
    names: list[str]
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """[channels, height, width] of one image."""
        shape = tuple(self.images.shape[2:])
        return (1, *shape) if len(shape) == 2 else shape

    @property
    def num_classes(self) -> int:
        return self.images.shape[0]

    @property
    def drawings_per_class(self) -> int:
        return self.images.shape[1]

    def to(self, device: torch.device | str) -> ClassDataset:
        return ClassDataset(self.images.to(device), self.names, self.normalization)


@dataclass
class Splits:
    protocol: str
    train: ClassDataset
    val: ClassDataset
    test: ClassDataset

    def describe(self) -> str:
        return (
            f"{self.protocol}: {self.train.num_classes} train / {self.val.num_classes} val / "
            f"{self.test.num_classes} test classes"
        )


def make_class_dataset(data: Omniglot, idx: np.ndarray, rotations: bool) -> ClassDataset:
    images = torch.from_numpy(data.images[idx])
    all_names = data.names()
    names = [all_names[i] for i in idx]
    if not rotations:
        return ClassDataset(images, names)
    rotated = [torch.rot90(images, k, dims=(2, 3)) for k in range(4)]
    rot_names = [f"{n} rot{90 * k}" if k else n for k in range(4) for n in names]
    return ClassDataset(torch.cat(rotated).contiguous(), rot_names)


def lake_validation_alphabets(data: Omniglot) -> list[str]:
    """The `lake` protocol's meta-validation alphabets (background alphabets at LAKE_VALIDATION_POSITIONS)."""
    background = data.alphabet_names("images_background")
    return [background[i] for i in LAKE_VALIDATION_POSITIONS if i < len(background)]


def load_splits(
    protocol: str = "lake",
    data_dir: str | Path | None = None,
    rotations: bool = True,
    data: Omniglot | None = None,
) -> Splits:
    """Build a protocol's splits. ``rotations`` adds rotated classes to lake's meta-train."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    data = data if data is not None else load_omniglot(data_dir)
    if protocol == "lake":
        background = data.alphabet_names("images_background")
        val_alphabets = set(lake_validation_alphabets(data))
        train_alphabets = set(background) - val_alphabets
        return Splits(
            protocol,
            train=make_class_dataset(data, data.indices("images_background", train_alphabets), rotations),
            val=make_class_dataset(data, data.indices("images_background", val_alphabets), False),
            test=make_class_dataset(data, data.indices("images_evaluation"), False),
        )
    keys = sorted(range(len(data)), key=lambda i: f"{data.sets[i]}/{data.alphabets[i]}/{data.characters[i]}")
    random.Random(1).shuffle(keys)
    order = np.asarray(keys, dtype=np.int64)
    return Splits(
        protocol,
        train=make_class_dataset(data, order[:1100], True),
        val=make_class_dataset(data, order[1100:1200], True),
        test=make_class_dataset(data, order[1200:], True),
    )


def evaluation_alphabet_dataset(data: Omniglot, alphabet: str | None = None) -> ClassDataset:
    """The evaluation alphabets (or one of them) as classes, for sampling tasks in the app."""
    alphabets = None if alphabet is None else {alphabet}
    idx = data.indices("images_evaluation", alphabets)
    if len(idx) == 0:
        raise ValueError(f"no evaluation alphabet named {alphabet!r}")
    return make_class_dataset(data, idx, False)

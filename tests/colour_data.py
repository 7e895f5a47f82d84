"""Tiny colour datasets in each real on-disk layout, with classes a network can tell apart: a shape
(disc, square, ring, stripes, cross) in a colour, at a random place and size, on a noisy background."""

from __future__ import annotations

import colorsys
import csv
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = ("disc", "square", "ring", "stripes", "cross")


def class_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One [size, size, 3] uint8 image of class ``label``: shape ``label % 5`` in hue ``label // 5``."""
    shape = SHAPES[label % len(SHAPES)]
    hue = (label // len(SHAPES)) * 0.618034 % 1.0
    colour = np.array(colorsys.hsv_to_rgb(hue, 0.9, 0.95)) * 255
    yy, xx = np.mgrid[0:size, 0:size] / size
    cy, cx = rng.uniform(0.35, 0.65, 2)
    r = rng.uniform(0.2, 0.3)
    dy, dx = yy - cy, xx - cx
    d = np.sqrt(dy**2 + dx**2)
    mask = {
        "disc": d < r,
        "square": (abs(dy) < r * 0.8) & (abs(dx) < r * 0.8),
        "ring": (d < r) & (d > r * 0.6),
        "stripes": (abs(dy) < r) & (abs(dx) < r) & ((xx * size // max(2, size // 10)) % 2 == 0),
        "cross": ((abs(dy) < r * 0.25) | (abs(dx) < r * 0.25)) & (d < r * 1.2),
    }[shape]
    image = rng.normal(110, 25, (size, size, 3))
    image[mask] = colour + rng.normal(0, 12, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def class_images(label: int, count: int, size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng([seed, label])
    return np.stack([class_image(label, size, rng) for _ in range(count)])


def write_cifar100(root: Path, per_class: tuple[int, int] = (16, 4), size: int = 32) -> Path:
    """``root/cifar-100-python/{meta,train,test}`` as CIFAR-100 lays them out, with real class names."""
    from playground.data.cifarfs import CIFAR_FS_SPLIT

    names = sorted(n for split in CIFAR_FS_SPLIT.values() for n in split)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    with (folder / "meta").open("wb") as f:
        pickle.dump({"fine_label_names": names, "coarse_label_names": []}, f)
    for part, count, offset in (("train", per_class[0], 0), ("test", per_class[1], 1000)):
        data, labels = [], []
        for label in range(len(names)):
            imgs = class_images(label, count, size, seed=offset)
            data.append(imgs.transpose(0, 3, 1, 2).reshape(count, -1))
            labels += [label] * count
        with (folder / part).open("wb") as f:
            pickle.dump({"data": np.concatenate(data), "fine_labels": labels}, f)
    return folder


MINI_SPLITS = {"train": 64, "val": 16, "test": 20}


def mini_class_name(i: int) -> str:
    return f"n{i:08d}"


def write_mini_pickles(root: Path, per_class: int = 6) -> Path:
    """``mini-imagenet-cache-{train,val,test}.pkl`` with image_data [N, 84, 84, 3] and class_dict."""
    root.mkdir(parents=True, exist_ok=True)
    label = 0
    for split, n in MINI_SPLITS.items():
        images, class_dict = [], {}
        for _ in range(n):
            class_dict[mini_class_name(label)] = list(range(len(images) * per_class, (len(images) + 1) * per_class))
            images.append(class_images(label, per_class, 84))
            label += 1
        with (root / f"mini-imagenet-cache-{split}.pkl").open("wb") as f:
            pickle.dump({"image_data": np.concatenate(images), "class_dict": class_dict}, f)
    return root


def write_mini_csv(root: Path, per_class: int = 3, size: int = 100) -> Path:
    """``images/`` + ``{train,val,test}.csv`` (filename,label), images not yet 84x84 as in Ravi's tool's output."""
    (root / "images").mkdir(parents=True)
    label = 0
    for split, n in MINI_SPLITS.items():
        with (root / f"{split}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["filename", "label"])
            for _ in range(n):
                name = mini_class_name(label)
                for d, img in enumerate(class_images(label, per_class, size)):
                    filename = f"{name}{d:08d}.png"
                    Image.fromarray(img).save(root / "images" / filename)
                    w.writerow([filename, name])
                label += 1
    return root


def write_folder(root: Path, classes: int = 10, per_class: int = 6, size: int = 90) -> Path:
    """One sub-folder of JPEGs per class."""
    for label in range(classes):
        d = root / f"class_{label:02d}"
        d.mkdir(parents=True)
        for i, img in enumerate(class_images(label, per_class, size)):
            Image.fromarray(img).save(d / f"{i:03d}.jpg", quality=95)
    return root

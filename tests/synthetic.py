"""Synthetic glyph classes for fast algorithm tests: strokes, jittered per drawing."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

from playground.data.protocols import ClassDataset


def synthetic_glyphs(n_classes: int = 40, drawings: int = 20, seed: int = 0, jitter: float = 3.0) -> ClassDataset:
    """Each class: 3 random strokes; each drawing moves every stroke point by up to ``jitter`` px
    (in a 56 px frame) and shifts the glyph, so classes overlap and must be learned."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n_classes, drawings, 28, 28), dtype=np.uint8)
    for c in range(n_classes):
        strokes = [rng.uniform(10, 46, size=(3, 2)) for _ in range(3)]
        for d in range(drawings):
            img = Image.new("L", (56, 56), 0)
            draw = ImageDraw.Draw(img)
            shift = rng.uniform(-5, 5, size=2)
            for s in strokes:
                pts = s + shift + rng.normal(0, jitter, size=s.shape)
                draw.line([tuple(p) for p in pts], fill=255, width=int(rng.integers(2, 5)))
            images[c, d] = np.asarray(img.resize((28, 28), Image.Resampling.BOX))
    return ClassDataset(torch.from_numpy(images), [f"glyph{c:02d}" for c in range(n_classes)])


def meta_train_step(learner, tasks) -> None:
    """One meta-training step on ``tasks``: the learner's own, or, for a learner assembled from others
    and not meta-trained itself (an ensemble), each member's, so its weights move like any other's."""
    parts = list(learner.learners) if learner.not_trainable else [learner]
    for part in parts:
        part.meta_train_step(tasks)

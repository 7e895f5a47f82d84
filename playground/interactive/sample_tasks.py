"""Random N-way K-shot tasks from Omniglot's evaluation alphabets, for the app's "surprise me"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from playground.data.omniglot import Omniglot
from playground.interactive.task_io import UserTask


def character_name(data: Omniglot, c: int) -> str:
    """A character's name as people write it: "Old Church Slavonic (Cyrillic) 37"."""
    number = data.characters[c].removeprefix("character").lstrip("0") or "0"
    return f"{data.alphabets[c].replace('_', ' ')} {number}"


@dataclass
class SampledTask:
    task: UserTask
    queries: list[np.ndarray]  # held-out drawings of the same characters (28x28 uint8, ink = 255)
    query_labels: list[int]
    alphabet: str | None


def sample_user_task(
    data: Omniglot,
    n_way: int,
    k_shot: int,
    n_query: int = 1,
    alphabet: str | None = None,
    seed: int | None = None,
) -> SampledTask:
    """Pick ``n_way`` evaluation characters (from one alphabet if given), ``k_shot`` drawings each
    for the support set and ``n_query`` other drawings each as labelled queries."""
    idx = data.indices("images_evaluation", {alphabet} if alphabet else None)
    where = f"alphabet {alphabet!r}" if alphabet else "the evaluation alphabets"
    if len(idx) == 0:
        raise ValueError(f"no characters in {where}")
    if n_way < 2 or n_way > len(idx):
        raise ValueError(f"{where} has {len(idx)} characters: choose between 2 and {len(idx)} classes")
    drawings = data.images.shape[1]
    if k_shot < 1 or n_query < 0 or k_shot + n_query > drawings:
        raise ValueError(f"shots + queries per class must be between 1 and {drawings}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(idx, size=n_way, replace=False)
    names, examples, queries, labels = [], [], [], []
    for label, c in enumerate(chosen):
        order = rng.permutation(drawings)
        names.append(character_name(data, c))
        examples.append([data.images[c, d].copy() for d in order[:k_shot]])
        for d in order[k_shot : k_shot + n_query]:
            queries.append(data.images[c, d].copy())
            labels.append(label)
    perm = rng.permutation(len(queries))  # shuffled, so the answers are not in class order
    return SampledTask(UserTask(names, examples), [queries[i] for i in perm], [labels[i] for i in perm], alphabet)


def sample_distractors(data: Omniglot, n: int, seed: int = 0, exclude: set[str] | None = None) -> list[np.ndarray]:
    """One drawing each of ``n`` random evaluation characters (not those named in ``exclude``), for context."""
    idx = data.indices("images_evaluation", None)
    names = [character_name(data, c) for c in idx]
    pool = [c for c, name in zip(idx, names) if name not in (exclude or set())]
    if not 0 <= n <= len(pool):
        raise ValueError(f"distractors must be between 0 and {len(pool)} (got {n})")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(pool, size=n, replace=False)
    return [data.images[c, rng.integers(data.images.shape[1])].copy() for c in chosen]

"""Few-shot evaluation with honest confidence intervals."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from playground.algorithms.base import MetaLearner
from playground.data.episodes import TaskSampler
from playground.data.protocols import ClassDataset, Splits

# Queries per class in the episodes of every model card's figures (`evaluate --query`'s default).
STANDARD_QUERIES = 15
# The splits a checkpoint is measured on: meta-test for figures, meta-validation for choosing settings.
EVALUATION_SPLITS = ("test", "val")


@dataclass
class EvalResult:
    """Per-episode accuracies and their mean with a 95% normal-approximation interval."""

    accuracies: list[float]
    n_way: int
    k_shot: int
    # Queries per class in each episode. With transductive batch norm the query batch's statistics,
    # and so the accuracy, depend on it (`playground.zoo.papers.Published.queries`).
    n_query: int | None = None

    @property
    def episodes(self) -> int:
        return len(self.accuracies)

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)

    @property
    def ci95(self) -> float:
        return confidence_interval_95(self.accuracies)

    def format(self) -> str:
        """``98.7 ± 0.4 %``."""
        return f"{100 * self.mean:.1f} ± {100 * self.ci95:.1f} %"

    def as_dict(self) -> dict:
        return {
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            **({} if self.n_query is None else {"n_query": self.n_query}),
            "episodes": self.episodes,
            "accuracy": round(self.mean, 6),
            "ci95": round(self.ci95, 6),
            "text": self.format(),
        }


def confidence_interval_95(values: list[float]) -> float:
    """1.96 x sample standard deviation / sqrt(n); 0 for fewer than two values."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return 1.96 * math.sqrt(var) / math.sqrt(n)


def evaluate_few_shot(
    learner: MetaLearner,
    dataset: ClassDataset,
    n_way: int = 5,
    k_shot: int = 1,
    n_query: int = 15,
    episodes: int = 600,
    seed: int = 0,
    batch_size: int = 50,
    n_steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    inner_lr: float | None = None,
) -> EvalResult:
    """Mean query accuracy over ``episodes`` seeded episodes (the same seed, the same episodes).

    ``n_steps`` and ``inner_lr`` set a gradient-based learner's test-time adaptation (default: its own).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1 (got {episodes})")
    n_query = min(n_query, dataset.drawings_per_class - k_shot)
    sampler = TaskSampler(dataset, n_way, k_shot, n_query, seed=seed)
    was_training = learner.training
    learner.eval()
    accs: list[float] = []
    try:
        while len(accs) < episodes:
            tasks = sampler.sample_batch(min(batch_size, episodes - len(accs)))
            accs += learner.episode_accuracies(tasks, n_steps=n_steps, inner_lr=inner_lr).tolist()
            if progress is not None:
                progress(len(accs), episodes)
    finally:
        learner.train(was_training)
    return EvalResult(accs, n_way, k_shot, n_query)


@dataclass
class Overlap:
    """Characters of an evaluation split that a model's training already showed it."""

    evaluated: str  # e.g. "vinyals/test"
    trained_on: list[str]  # the protocols whose classes the model saw
    seen: list[str]  # the evaluated split's characters among them
    characters: int  # all the evaluated split's characters

    def describe(self) -> str:
        examples = ", ".join(self.seen[:3]) + (", ..." if len(self.seen) > 3 else "")
        return (
            f"{len(self.seen)} of the {self.characters} characters of the {self.evaluated} split ({examples}) are "
            f"classes the model was trained or chosen on ({' and '.join(self.trained_on)} protocol)"
        )


def _character(class_name: str) -> str:
    # protocols.make_class_dataset names a rotated class "<alphabet>/<character> rot<degrees>"; the
    # drawings are the character's own, so a rotation of a seen character is seen.
    return class_name.partition(" rot")[0]


def training_overlap(
    trained_on: Sequence[str], protocol: str, split: str, splits_of: Callable[[str], Splits]
) -> Overlap | None:
    """The characters of ``protocol``'s ``split`` (one of `EVALUATION_SPLITS`) that a model trained on the protocols
    ``trained_on`` has seen, or None when it has seen none of them.

    Seen: each training protocol's meta-train classes, and its meta-validation classes, which chose
    the checkpoint, unless they are the very split evaluated (a protocol's own validation split is
    for choosing settings on). ``splits_of(protocol)`` gives a protocol's `Splits`.
    """
    evaluated = getattr(splits_of(protocol), split)
    characters = {_character(name) for name in evaluated.names}
    seen_classes: set[str] = set()
    for trained in trained_on:
        splits = splits_of(trained)
        own_validation = trained == protocol and split == "val"
        for dataset in (splits.train,) if own_validation else (splits.train, splits.val):
            seen_classes |= {_character(name) for name in dataset.names}
    seen = sorted(characters & seen_classes)
    if not seen:
        return None
    return Overlap(f"{protocol}/{split}", list(trained_on), seen, len(characters))

"""What ``evaluate``, ``lake-runs`` and ``calibrate-steps`` share: the checks before a checkpoint is measured,
its splits, and measuring with a progress bar."""

from __future__ import annotations

from collections.abc import Callable

import torch

from playground.algorithms.base import MetaLearner
from playground.cli.common import work_starts
from playground.data import protocols
from playground.data.datasets import dataset as dataset_info
from playground.data.datasets import dataset_of_protocol, load_dataset_splits
from playground.evaluation.few_shot import EvalResult, Overlap, evaluate_few_shot, training_overlap
from playground.zoo.checkpoints import Checkpoint


def check_dataset_fits(learner: MetaLearner, name: str) -> None:
    """Refuse a dataset whose images are not those the learner's network takes (glyphs vs photos)."""
    info = dataset_info(name)
    if tuple(info.image_shape) != tuple(learner.image_shape):
        shape = "x".join(map(str, learner.image_shape))
        raise ValueError(
            f"the checkpoint's network takes {shape} images; {info.title} has "
            f"{'x'.join(map(str, info.image_shape))}: evaluate it on the dataset it was trained for"
        )


def splits_loader(data_dir: str | None, dataset: str = "omniglot") -> Callable[[str], protocols.Splits]:
    """``protocol -> Splits`` (unrotated where the protocol allows), each built once. A protocol of another
    dataset than ``dataset`` has no classes in common with it: its splits are empty."""
    built: dict[str, protocols.Splits] = {}

    def splits_of(protocol: str) -> protocols.Splits:
        if protocol not in built:
            if dataset_of_protocol(protocol) != dataset:
                none = protocols.ClassDataset(torch.zeros(0, 1, 28, 28, dtype=torch.uint8), [])
                built[protocol] = protocols.Splits(protocol, none, none, none)
            else:
                built[protocol] = load_dataset_splits(dataset, protocol, data_dir, rotations=False)
        return built[protocol]

    return splits_of


def refuse_seen_classes(
    ckpt: Checkpoint,
    protocol: str,
    split: str,
    splits_of: Callable[[str], protocols.Splits],
    allow: bool = False,
) -> Overlap | None:
    """Refuse to measure a checkpoint on a split holding characters it was trained or chosen on (another
    protocol's split); with ``allow``, return what overlaps (None when nothing does) for the caller to mark."""
    overlap = training_overlap(ckpt.trained_protocols, protocol, split, splits_of)
    if overlap is not None and not allow:
        raise ValueError(
            f"{overlap.describe()}: its accuracy there would not measure learning new classes. Evaluate on "
            f"--protocol {ckpt.protocol}, or pass --allow-training-classes to measure it anyway (marked "
            "contaminated, never written into a card)"
        )
    return overlap


_ADAPT_FLAGS = {"n_steps": ("--inner-steps", "inner steps"), "inner_lr": ("--inner-lr", "inner learning rate")}


def check_adapt_flags(learner: MetaLearner, label: str, **given: object) -> None:
    """Refuse ``--inner-steps``/``--inner-lr`` for a learner that would ignore them (a card would name
    settings its figure was not measured with). ``given`` maps ``n_steps``/``inner_lr`` to the flag's value."""
    for option, value in given.items():
        if value not in (None, []) and not learner.adapts_with(option):
            flag, what = _ADAPT_FLAGS[option]
            raise ValueError(f"{flag}: {label} has no {what} (it adapts without gradient steps)")


def evaluate_with_bar(
    label: str,
    learner: MetaLearner,
    dataset: protocols.ClassDataset,
    ways: int,
    shots: int,
    query: int,
    episodes: int,
    seed: int,
    n_steps: int | None,
    inner_lr: float | None = None,
) -> EvalResult:
    """`evaluate_few_shot` with a progress bar: a gradient-based learner taking many steps on large tasks
    is slow to measure."""
    from playground.training import progress_bar

    work_starts()
    with progress_bar(episodes, desc=label) as bar:
        return evaluate_few_shot(
            learner,
            dataset,
            ways,
            shots,
            query,
            episodes,
            seed=seed,
            n_steps=n_steps,
            inner_lr=inner_lr,
            progress=lambda done, _total: bar.update(done - bar.n),
        )

"""What a run needs before its first iteration: checked settings, the data, the learner, the episodes, the schedule."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from playground.algorithms import MetaLearner, create_learner, learner_class
from playground.algorithms.test_time import TestTimeSettings
from playground.data.datasets import Dataset, load_dataset_splits
from playground.data.datasets import dataset as dataset_info
from playground.data.episodes import StyleTaskSampler, TaskSampler
from playground.data.protocols import ClassDataset, Splits, load_splits
from playground.data.style_shift import style_variants
from playground.runtime import distributed
from playground.training.config import TrainConfig, validate_config
from playground.training.resume import episode_seed, is_shipped, training_command
from playground.training.run_state import RunState
from playground.zoo.checkpoints import Checkpoint, learner_from_checkpoint, read_checkpoint


def load_data(cfg: TrainConfig) -> tuple[Dataset, Splits]:
    """The dataset and its splits, once ``cfg`` is checked against them (a ValueError names the flag at fault)."""
    validate_config(cfg)
    cls = learner_class(cfg.algorithm)
    if cls.not_trainable:
        raise ValueError(f"--algorithm {cfg.algorithm}: {cls.not_trainable}")
    info = dataset_info(cfg.dataset)
    channels, size, _ = info.image_shape
    if (channels, size) != (1, 28) and cls.glyphs_only:
        raise ValueError(f"--algorithm {cfg.algorithm} cannot run on {info.title}: {cls.glyphs_only}")
    if info.read is None:  # Omniglot, through its own protocols
        splits = load_splits(cfg.protocol, cfg.data_dir, rotations=cfg.rotations)
    else:
        splits = load_dataset_splits(cfg.dataset, cfg.protocol, cfg.data_dir, rotations=cfg.rotations)
    if splits.train.num_classes == 0:
        raise ValueError(f"--protocol {cfg.protocol} has no meta-training classes: it is for evaluation only")
    validate_config(cfg, splits)
    distributed.check(cfg.algorithm, cfg.meta_batch)
    return info, splits


def start_run(
    cfg: TrainConfig,
    info: Dataset,
    train_set: ClassDataset,
    device: torch.device,
    resumed: Checkpoint | None,
    echo: Callable[..., None],
) -> RunState:
    """A run at its first iteration: its learner new (or ``resumed``'s weights), its streams seeded.

    A resumed run's optimizer, schedule, streams and record are then put back by `resume.restore`.
    """
    torch.manual_seed(cfg.seed)
    learner = learner_from_checkpoint(resumed, device) if resumed is not None else new_learner(cfg, info).to(device)
    # A resumed run validates as it did before the stop, whatever card may lie beside its checkpoint.
    learner.test_time = TestTimeSettings()
    # Fine-tuned from --init-from: the card's budget counts the base model's training too, not only this run's.
    base = init_weights(learner, cfg.init_from) if resumed is None and cfg.init_from else None
    if resumed is None:
        # Before the optimizer is made: the hook may add parameters (a classifier over all classes).
        # A resumed learner got whatever it set up from its checkpoint.
        learner.prepare_training(train_set)
    distributed.prepare(learner)
    seed = episode_seed(cfg, resumed)
    if resumed is not None and is_shipped(resumed):
        torch.manual_seed(seed)  # a shipped model keeps no global random state either: it restarts with the streams
    sampler = new_sampler(cfg, train_set, seed, echo)
    # Its own stream, so the episodes are the same with and without augmentation.
    shifts = torch.Generator().manual_seed(seed + 2)
    return RunState(learner, cosine_schedule(learner.optimizer, cfg.iterations), sampler, shifts, base=base)


def new_learner(cfg: TrainConfig, info: Dataset) -> MetaLearner:
    """A learner of ``cfg.algorithm`` with the hyperparameters of ``cfg.learner`` that it accepts."""
    channels, size, _ = info.image_shape
    # The network is sized for the dataset's images (a learner's own options cannot change them).
    options = {**cfg.learner, "n_way": cfg.train_ways or cfg.ways, "in_channels": channels, "image_size": size}
    accepted = learner_class(cfg.algorithm).hyperparameters()
    return create_learner(cfg.algorithm, **{k: v for k, v in options.items() if k in accepted})


def new_sampler(cfg: TrainConfig, train_set: ClassDataset, seed: int, echo: Callable[..., None]) -> TaskSampler:
    """The training episodes' sampler, drawing style-shifted images too under ``--augment-style``."""
    ways, shots = cfg.train_ways or cfg.ways, cfg.train_shots or cfg.shots
    if cfg.augment_style == 0:
        return TaskSampler(train_set, ways, shots, cfg.query, seed=seed, within_alphabet=cfg.within_alphabet)
    if distributed.is_main():
        echo(f"style bank: {cfg.style_variants} shifted variants per training drawing (cached after the first run)")
    bank = style_variants(train_set.names, cfg.style_variants, cfg.seed, cfg.data_dir, workers=torch.get_num_threads())
    return StyleTaskSampler(
        train_set, bank, cfg.augment_style, ways, shots, cfg.query, seed=seed, within_alphabet=cfg.within_alphabet
    )


def cosine_schedule(optimizer: torch.optim.Optimizer, iterations: int, floor: float = 0.05):
    """Cosine decay from the outer learning rate to ``floor`` times it over ``iterations``.

    Closed form (LambdaLR), so resuming with more ``--iterations`` stretches the remaining
    decay instead of restarting it.
    """

    def factor(it: int) -> float:
        progress = min(it, iterations) / iterations
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def init_weights(learner: MetaLearner, checkpoint: str | Path) -> dict[str, Any]:
    """Copy the weights of ``checkpoint`` into ``learner`` (e.g. fine-tune ProtoNet as soft k-means).

    Returns the base's budget (its iterations and seconds, its own base's included), its command,
    and its own base's record under ``base`` when it was itself fine-tuned.
    """
    source = read_checkpoint(checkpoint)
    own = learner.state_dict()
    missing = sorted(set(own) - set(source.state_dict))
    wrong = sorted(k for k in own if k in source.state_dict and source.state_dict[k].shape != own[k].shape)
    if missing or wrong:
        raise ValueError(
            f"--init-from {checkpoint}: its {source.algorithm} weights do not fit {learner.name} "
            f"(missing {missing[:5]}, different shape {wrong[:5]})"
        )
    learner.load_state_dict({k: source.state_dict[k] for k in own})
    earlier = source.training.get("base", {})
    return {
        "checkpoint": str(checkpoint),
        "algorithm": source.algorithm,
        # The classes it saw: a split that holds them is no test of the fine-tuned model either.
        "protocol": source.protocol,
        "iterations": source.training.get("iteration", 0) + earlier.get("iterations", 0),
        # Not rounded: a fast machine trains a tiny base in well under 0.05 s, and rounding is the report's job.
        "seconds": source.training.get("train_seconds", 0.0) + earlier.get("seconds", 0.0),
        # How the base was made, so the card stays reproducible when the base file is gone or replaced.
        "command": training_command(source, checkpoint),
        # The base's own base, and so on down the chain: every command that made the weights.
        **({"base": earlier} if earlier else {}),
    }

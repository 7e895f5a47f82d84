"""The state of a training run: what it carries from one iteration to the next, and what a checkpoint keeps of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from playground.algorithms import MetaLearner
from playground.data.episodes import TaskSampler

# The keys of a checkpoint's ``training`` record that RunState declares, in the order it writes them.
RECORD_KEYS = (
    "iteration",
    "best_val",
    "best_iteration",
    "train_seconds",
    "loss_avg",
    "acc_avg",
    "hardware",
    "base",
    "episode_streams",
)


@dataclass
class RunState:
    """A run's progress, and the objects whose state a resume puts back as it was.

    `state_dict` gives the checkpoint entries a resume reads: ``training`` (the record, which model
    cards read too), ``optimizer``, ``scheduler``, ``sampler``, ``torch_rng`` and ``shift_rng``. The
    weights are not among them: they belong to the learner, saved and loaded with it (`playground.zoo.checkpoints`).
    """

    learner: MetaLearner  # its optimizer is ``learner.optimizer``
    scheduler: torch.optim.lr_scheduler.LambdaLR
    sampler: TaskSampler
    shifts: torch.Generator  # augmentation's random stream (shifts, colour jitter), apart from the episodes'
    iteration: int = 0
    best_val: float = -1.0  # the best meta-validation accuracy so far
    best_iteration: int | None = None
    train_seconds: float = 0.0
    # Smoothed, and kept so that the log goes on from a resume as it would have without a stop.
    loss_avg: float | None = None
    acc_avg: float | None = None
    hardware: str | None = None  # where it was first trained (a resume elsewhere keeps it)
    base: dict[str, Any] | None = None  # the record of the model it was fine-tuned from (--init-from)
    # [iteration, seed] for each time a shipped model, which keeps no stream state, was trained on.
    episode_streams: list[list[int]] = field(default_factory=list)
    # Entries other commands wrote into the record (calibrate-steps' scores), kept as they are.
    other: dict[str, Any] = field(default_factory=dict)

    def advance(self, loss: float, accuracy: float) -> None:
        """Count an iteration and fold its loss and accuracy into the smoothed ones."""
        self.iteration += 1
        self.loss_avg = loss if self.loss_avg is None else 0.95 * self.loss_avg + 0.05 * loss
        self.acc_avg = accuracy if self.acc_avg is None else 0.95 * self.acc_avg + 0.05 * accuracy

    def record(self) -> dict[str, Any]:
        """The checkpoint's ``training`` entry: the values that are set, then the other entries."""
        # Unset values are left out rather than written as None: readers take a missing key for "none"
        # (`init_weights` reads ``base`` with a default of {}).
        values = {key: getattr(self, key) for key in RECORD_KEYS}
        values = {key: value for key, value in values.items() if value is not None}
        if not self.episode_streams:
            del values["episode_streams"]
        return {**values, **self.other}

    def state_dict(self) -> dict[str, Any]:
        """As torch's state dicts, it refers to live tensors (the optimizer's): save or copy it to keep a snapshot."""
        return {
            "training": self.record(),
            "optimizer": self.learner.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "shift_rng": self.shifts.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Put back what ``state`` holds, as `state_dict` gives it; any entry may be missing (a shipped
        model keeps only its record) and leaves its part as it is."""
        record = dict(state.get("training", {}))
        for key in RECORD_KEYS:
            if key in record:
                setattr(self, key, record.pop(key))
        self.episode_streams = [list(stream) for stream in self.episode_streams]
        self.other = record
        if state.get("optimizer") is not None:
            self.learner.optimizer.load_state_dict(state["optimizer"])
        if "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
        if "sampler" in state:
            self.sampler.load_state_dict(state["sampler"])
            # The other streams go back only with the episodes': without it they all start afresh together.
            if "torch_rng" in state:
                torch.set_rng_state(state["torch_rng"])
            if "shift_rng" in state:  # runs saved before shifts existed have none
                self.shifts.set_state(state["shift_rng"])

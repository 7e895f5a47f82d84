"""Resuming: a checkpoint's run goes on with its own settings, from where it stopped.

A checkpoint written by training (last.pt, best.pt) holds the whole `RunState`; a shipped one
(`playground.zoo.checkpoints.export_for_inference`) only the weights, the record and the config, and
training it on starts the optimizer and the random streams afresh at its iteration.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playground.runtime import distributed
from playground.training.config import TrainConfig
from playground.training.run_state import RunState
from playground.zoo.checkpoints import Checkpoint, read_card

# The settings a resume takes from its caller (as --flags on the command line); every other one is the saved run's.
RESUME_SETTINGS = ("iterations", "device", "out", "data_dir", "save_every")

# The checkpoint entries `RunState.state_dict` writes besides the record.
_STATE_ENTRIES = ("scheduler", "sampler", "torch_rng", "shift_rng")


def resumed_config(cfg: TrainConfig, ckpt: Checkpoint, source: str | Path) -> TrainConfig:
    """The config of the run saved in ``ckpt`` (read from ``source``), with ``cfg``'s `RESUME_SETTINGS`.

    ``--iterations`` never shortens the run, ``data_dir`` applies only when given, and the command
    becomes the chain that made the weights: the first run's, then each resume's.
    """
    saved = ckpt.extra.get("train_config")
    if not isinstance(saved, dict):
        raise ValueError(f"{source} holds no training state to resume from")
    command = " && ".join(c for c in (training_command(ckpt, source), cfg.command) if c)
    return TrainConfig(
        **{
            **saved,
            **{setting: getattr(cfg, setting) for setting in RESUME_SETTINGS},
            "iterations": max(cfg.iterations, saved["iterations"]),
            "data_dir": cfg.data_dir or saved.get("data_dir"),  # the data may be elsewhere on this machine
            "command": command,
        }
    )


def is_shipped(ckpt: Checkpoint) -> bool:
    """Whether ``ckpt`` keeps weights and config only, without the state of the run's streams."""
    return "sampler" not in ckpt.extra


def episode_seed(cfg: TrainConfig, ckpt: Checkpoint | None) -> int:
    """The seed the episode and shift streams start from: the run's own, or a new one for a shipped model."""
    if ckpt is None or not is_shipped(ckpt):
        return cfg.seed
    # Shipping drops the streams' states; restarting them from the seed would replay the
    # episodes (and shifts) the model was first trained on, so they restart elsewhere.
    return continued_seed(cfg.seed, ckpt.training.get("iteration", 0))


def continued_seed(seed: int, iteration: int) -> int:
    """The seed of the episode stream for a shipped model trained on from ``iteration``: a hash of
    the run's seed and the iteration, so the first run's stream is not replayed."""
    digest = hashlib.sha256(f"playground episodes {seed} {iteration}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def restore(run: RunState, ckpt: Checkpoint, cfg: TrainConfig, source: str | Path, echo: Callable[..., None]) -> None:
    """Put ``run`` back where ``ckpt`` (read from ``source``) stopped; a shipped model goes on from its iteration."""
    run.load_state_dict(checkpoint_state(ckpt))
    if is_shipped(ckpt):
        run.episode_streams.append([run.iteration, episode_seed(cfg, ckpt)])
    if ckpt.optimizer is None and distributed.is_main():
        echo(
            f"{source} keeps weights and config only (a shipped model): the optimizer starts afresh "
            f"at iteration {run.iteration}, and the episodes come from a new stream"
        )
    if "scheduler" not in ckpt.extra:
        # A shipped checkpoint keeps no scheduler: the closed-form schedule is put back at the
        # saved iteration, so training on continues its decay.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
            for _ in range(run.iteration):
                run.scheduler.step()


def checkpoint_state(ckpt: Checkpoint) -> dict[str, Any]:
    """The `RunState.state_dict` entries that ``ckpt`` holds."""
    entries = {key: ckpt.extra[key] for key in _STATE_ENTRIES if key in ckpt.extra}
    return {"training": ckpt.training, "optimizer": ckpt.optimizer, **entries}


def training_command(source: Checkpoint, checkpoint: str | Path) -> str:
    """The command that trained ``source``: its own record, else its model card's."""
    command = source.extra.get("train_config", {}).get("command", "")
    if not command:
        # A checkpoint saved before runs recorded their command keeps it in its model card only.
        card = read_card(checkpoint)
        command = (card.training.command if card else None) or ""
    return command

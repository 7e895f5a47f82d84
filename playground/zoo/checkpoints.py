"""Checkpoints: weights + full config, saved atomically, loaded with ``weights_only=True``.

A checkpoint is a plain dict of tensors and primitives, so loading it never runs code;
anything that is not one of ours is refused with `CheckpointError`.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from playground.algorithms import HOW_TO_LOAD, MetaLearner, available, create_learner
from playground.algorithms.test_time import TestTimeSettings
from playground.zoo.card import ModelCard

FORMAT = "meta-learning-playground/checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """The file is not a usable checkpoint of this project; the message says why."""


@dataclass
class Checkpoint:
    algorithm: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    training: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    card: ModelCard | None = None  # the model card beside the file, when there is one

    @property
    def protocol(self) -> str:
        """The split it was trained on; checkpoints older than the record were all `lake`."""
        return self.extra.get("train_config", {}).get("protocol", "lake")

    @property
    def dataset(self) -> str:
        """The dataset it was trained on (`playground.data.datasets`); checkpoints older than the record: Omniglot."""
        return self.extra.get("train_config", {}).get("dataset", "omniglot")

    @property
    def trained_protocols(self) -> list[str]:
        """Its own protocol, then those of the models it was fine-tuned from (``--init-from``), as recorded:
        the splits whose training classes its weights have seen."""
        protocols, base = [self.protocol], self.training.get("base")
        while base:
            if "protocol" in base:  # bases recorded before their protocol was are not known
                protocols.append(base["protocol"])
            base = base.get("base")
        return list(dict.fromkeys(protocols))


def save_checkpoint(path: str | Path, learner: MetaLearner, training: dict | None = None, **extra: Any) -> Path:
    """Write atomically (temp file, then rename): a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "algorithm": learner.name,
        "config": learner.config(),
        "state_dict": {k: v.detach().cpu() for k, v in learner.state_dict().items()},
        "training": training or {},
        **extra,
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def export_for_inference(source: str | Path, target: str | Path) -> Path:
    """A copy of a training checkpoint without what only resuming needs (optimizer, sampler, RNG state).

    Shipped models stay small; the training record and config, which the model card reads, are kept.
    """
    ckpt = read_checkpoint(source)
    learner = learner_from_checkpoint(ckpt, "cpu")
    keep = {k: ckpt.extra[k] for k in ("train_config",) if k in ckpt.extra}
    return save_checkpoint(target, learner, training=ckpt.training, **keep)


def ship(source: str | Path, target: str | Path, note: str | None = None) -> tuple[Path, Path | None]:
    """Export ``source`` for inference to ``target``, with its model card when it has one.

    The card (results, training record) goes beside the target, ``note`` replacing its note;
    returns the two paths, the second None when ``source`` has no card to carry.
    """
    card = read_card(source)
    if note is not None and card is None:
        raise CheckpointError(f"{source} has no model card to put the note in: evaluate it with --card first")
    path = export_for_inference(source, target)
    if card is None:
        stale = card_path(path)
        stale.unlink(missing_ok=True)  # a card left from an earlier model would describe the wrong weights
        return path, None
    if note is not None:
        card = replace(card, note=note)
    return path, write_card(path, card)


def load_plain(path: Path) -> Any:
    """A torch file's contents, read with ``weights_only=True``: plain tensors and values only, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} is not a checkpoint of this project: it holds objects that are not plain "
            "tensors and values, and it was refused without running them"
        ) from exc
    except Exception as exc:  # torch raises many types (KeyError, EOFError, RuntimeError...) on junk
        raise CheckpointError(
            f"{path} is truncated or corrupt and cannot be read ({type(exc).__name__}: {exc})"
        ) from exc


def read_checkpoint(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if _is_model_card(path):
        beside = path.with_suffix(".pt")
        there = "" if beside.is_file() else " (there is none)"
        raise CheckpointError(f"{path} is a model card, not a checkpoint: its checkpoint is {beside}{there}")
    payload = load_plain(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint of this project (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}, this code reads {VERSION}")
    extra = {
        k: v
        for k, v in payload.items()
        if k not in {"format", "version", "algorithm", "config", "state_dict", "training", "optimizer"}
    }
    return Checkpoint(
        payload["algorithm"],
        payload["config"],
        payload["state_dict"],
        payload.get("training", {}),
        payload.get("optimizer"),
        extra,
        read_card(path),
    )


def _is_model_card(path: Path) -> bool:
    """Whether ``path`` is JSON text holding an object (a card, as `write_card` writes it); a checkpoint is a zip."""
    with path.open("rb") as f:
        if f.read(1) != b"{":
            return False
    try:
        return isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
    except (ValueError, UnicodeDecodeError):
        return False


def learner_from_checkpoint(ckpt: Checkpoint, device: torch.device | str = "cpu") -> MetaLearner:
    if ckpt.algorithm not in available():
        # Most often a plugin's checkpoint opened without its plugin: say how to load it, not that the config is off.
        raise CheckpointError(
            f"the checkpoint was made by algorithm {ckpt.algorithm!r}, which is not loaded; {HOW_TO_LOAD}"
        )
    try:
        learner = create_learner(ckpt.algorithm, **ckpt.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint config does not fit algorithm {ckpt.algorithm!r}: {exc}") from exc
    try:
        learner.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise CheckpointError(
            f"checkpoint weights do not fit {ckpt.algorithm!r} with its config: {' '.join(first)}"
        ) from exc
    # The settings its card's figures were measured with are part of the model as loaded (`TestTimeSettings`).
    learner.test_time = TestTimeSettings.from_card(ckpt.card)
    return learner.to(device).eval()


def load_learner(path: str | Path, device: torch.device | str = "cpu") -> MetaLearner:
    """The learner stored at ``path``, in eval mode on ``device``."""
    return learner_from_checkpoint(read_checkpoint(path), device)


def weights_fingerprint(module: torch.nn.Module) -> str:
    """A short hash of every parameter and buffer, bit for bit: equal iff the weights are unchanged.

    The app shows it beside each loaded model, so anyone can check that the shared model they are
    served is the shipped one and that nobody's adaptation moved it.
    """
    import hashlib

    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def card_path(checkpoint_path: str | Path) -> Path:
    return Path(checkpoint_path).with_suffix(".json")


def read_card(checkpoint_path: str | Path) -> ModelCard | None:
    """The model card beside a checkpoint, or None when there is none or it is unreadable."""
    try:
        return ModelCard.load(card_path(checkpoint_path))
    except (OSError, ValueError):
        return None


def write_card(checkpoint_path: str | Path, card: ModelCard | dict[str, Any]) -> Path:
    """Write ``card`` (a `ModelCard`, or its JSON object) beside the checkpoint, atomically."""
    return ModelCard.of(card).save(card_path(checkpoint_path))

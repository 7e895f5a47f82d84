"""What a run records of where it ran, and the model card of a trained checkpoint."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from playground.zoo.card import Evaluation, ModelCard, Result, TrainingRecord
from playground.zoo.checkpoints import read_checkpoint


def hardware_description(device: torch.device) -> str:
    """The machine a run trains or evaluates on, for its record and model card."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads)"


def make_card(checkpoint_path: Path, results: list[Result], device: torch.device, note: str = "") -> ModelCard:
    """A model card for a trained checkpoint: config, protocol, budget, hardware, results."""
    ckpt = read_checkpoint(checkpoint_path)
    tc = ckpt.extra.get("train_config", {})
    return ModelCard(
        algorithm=ckpt.algorithm,
        config=ckpt.config,
        dataset=tc.get("dataset", "omniglot"),
        protocol=tc.get("protocol"),
        training=TrainingRecord(
            iterations=ckpt.training.get("iteration"),
            best_iteration=ckpt.training.get("best_iteration"),
            best_val_accuracy=ckpt.training.get("best_val"),
            seconds=round(ckpt.training.get("train_seconds", 0.0), 1),
            base=ckpt.training.get("base"),
            train_config=tc,
            hardware=ckpt.training.get("hardware", ""),
            command=tc.get("command", ""),
        ),
        evaluation=Evaluation(
            split="test (meta-test classes of the protocol)",
            device=hardware_description(device),
            results=tuple(results),
        ),
        torch=torch.__version__,
        note=note,
    )

"""Ensemble checkpoints: trained checkpoints combined into one (`playground.algorithms.ensemble`)."""

from __future__ import annotations

from pathlib import Path

from playground.algorithms import create_learner
from playground.algorithms.ensemble import Ensemble
from playground.zoo.checkpoints import learner_from_checkpoint, read_checkpoint, save_checkpoint


def assemble_ensemble(
    checkpoints: list[str | Path], view_shift: int = 0, command: str = "", step_views: bool = True
) -> tuple[Ensemble, dict, dict]:
    """The ensemble of the learners in ``checkpoints`` with their weights, its training record
    (the members' budgets added up, each member's own kept) and its train config (the members' protocol)."""
    if not checkpoints:
        raise ValueError("an ensemble needs at least one member checkpoint")
    members, specs, records, protocols, hardware = [], [], [], {}, set()
    for path in checkpoints:
        ckpt = read_checkpoint(path)
        if ckpt.algorithm == Ensemble.name:
            raise ValueError(f"{path} is itself an ensemble; list its member checkpoints instead")
        learner = learner_from_checkpoint(ckpt)
        members.append(learner)
        specs.append({"algorithm": ckpt.algorithm, "config": learner.config()})
        protocols[str(path)] = ckpt.protocol
        hardware.add(ckpt.training.get("hardware", ""))
        records.append(
            {
                "checkpoint": Path(path).name,
                "algorithm": ckpt.algorithm,
                "iterations": ckpt.training.get("iteration"),
                "seconds": round(ckpt.training.get("train_seconds", 0.0), 1),
                "command": ckpt.extra.get("train_config", {}).get("command", ""),
            }
        )
    if len(set(protocols.values())) > 1:
        raise ValueError(f"the members were trained on different protocols: {protocols}; an ensemble needs one")
    ensemble = create_learner(Ensemble.name, members=specs, view_shift=view_shift, step_views=step_views)
    for own, trained in zip(ensemble.learners, members):
        own.load_state_dict(trained.state_dict())
    training = {
        "iteration": sum(r["iterations"] or 0 for r in records),
        "train_seconds": sum(r["seconds"] for r in records),
        "hardware": "; ".join(sorted(hardware - {""})),
        "members": records,
    }
    train_config = {"protocol": next(iter(protocols.values())), "command": command}
    return ensemble, training, train_config


def save_ensemble(
    checkpoints: list[str | Path], out: str | Path, view_shift: int = 0, command: str = "", step_views: bool = True
) -> Path:
    """Write the ensemble of ``checkpoints`` to ``out`` (a checkpoint like any other)."""
    ensemble, training, train_config = assemble_ensemble(checkpoints, view_shift, command, step_views)
    return save_checkpoint(out, ensemble, training=training, train_config=train_config)

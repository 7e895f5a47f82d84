"""One small checkpoint for the three regressors, its model card, and train -> save -> evaluate -> card.

Same conventions as `playground.zoo.checkpoints`: a plain dict of tensors and primitives,
written atomically, read with ``weights_only=True`` (loading never runs code), anything
else refused with `CheckpointError`. It carries its own format marker, so the Omniglot
tools (`load_learner`, the app's model list) refuse it instead of mistaking it for a
few-shot classifier; keep it out of ``assets/checkpoints/``, which the app loads wholesale.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from playground.sinusoid.evaluate import EVAL_SEED, MSEResult, evaluate
from playground.sinusoid.model import SineRegressor
from playground.sinusoid.tasks import AMPLITUDE_RANGE, PHASE_RANGE, X_RANGE
from playground.sinusoid.train import METHODS, Progress, SineRegressors, train_all
from playground.training import hardware_description
from playground.zoo.card import ModelCard, SineResult
from playground.zoo.checkpoints import CheckpointError, load_plain, read_card, write_card

FORMAT = "meta-learning-playground/sinusoid"
VERSION = 1
DEFAULT_PATH = "assets/sinusoid/sinusoid.pt"


def save_regressors(path: str | Path, regressors: SineRegressors) -> Path:
    """Inference weights and step sizes only (no optimiser state): about 25 KB."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hidden = {m.hidden for m in regressors.models.values()}
    if len(hidden) != 1:
        raise ValueError(f"the three regressors must share one width (got {sorted(hidden)})")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "hidden": hidden.pop(),
        "state_dicts": {
            name: {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}
            for name, m in regressors.models.items()
        },
        "lrs": {k: float(v) for k, v in regressors.lrs.items()},
        "training": regressors.training,
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written checkpoint
    return path


def _read_payload(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    payload = load_plain(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a sinusoid checkpoint of this project (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has sinusoid checkpoint version {payload.get('version')}, this code reads {VERSION}"
        )
    return payload


def load_regressors(path: str | Path) -> SineRegressors:
    """The three regressors stored at ``path``, in eval mode on the CPU; `CheckpointError` if unusable."""
    path = Path(path)
    payload = _read_payload(path)
    hidden, states, lrs = payload.get("hidden"), payload.get("state_dicts"), payload.get("lrs")
    if not isinstance(hidden, int) or hidden < 1 or not isinstance(states, dict) or not isinstance(lrs, dict):
        raise CheckpointError(f"{path} lacks the regressors' width, weights or step sizes")
    models: dict[str, SineRegressor] = {}
    for name in METHODS:
        lr = lrs.get(name)
        if name not in states or not isinstance(lr, float) or not 0 < lr < math.inf:
            raise CheckpointError(f"{path} has no usable weights or step size for {name!r}")
        model = SineRegressor(hidden)
        try:
            model.load_state_dict(states[name])
        except (RuntimeError, TypeError, AttributeError) as exc:
            first = " ".join(str(exc).splitlines()[:3])
            raise CheckpointError(
                f"{path}: the {name!r} weights do not fit a 1-{hidden}-{hidden}-1 MLP: {first}"
            ) from exc
        models[name] = model
    return SineRegressors(models, {m: lrs[m] for m in METHODS}, payload.get("training") or {})


def _card_log(log: dict[str, Any]) -> dict[str, Any]:
    """A training log without its loss history (that stays in the checkpoint), with the final loss."""
    card = {k: v for k, v in log.items() if k != "loss_history"}
    if log.get("loss_history"):
        card["final_loss"] = log["loss_history"][-1][1]
    return card


def make_card(
    checkpoint_path: str | Path,
    regressors: SineRegressors,
    results: Sequence[MSEResult],
    command: str,
) -> ModelCard:
    """The model card: task distribution, config, training budget, command, hardware, results."""
    cpu = torch.device("cpu")
    tr = regressors.training
    # Built as JSON: its training record and evaluation carry the sine card's own keys (`extra`) in this order.
    return ModelCard.from_dict(
        {
            "algorithm": "sinusoid",
            "task": {
                "source": "Finn et al. 2017, section 5.1: y = A sin(x - phase)",
                "amplitude": list(AMPLITUDE_RANGE),
                "phase": [PHASE_RANGE[0], round(PHASE_RANGE[1], 6)],
                "x": list(X_RANGE),
            },
            "config": {
                "architecture": f"MLP 1-{regressors.models['maml'].hidden}-{regressors.models['maml'].hidden}-1, ReLU",
                "adaptation_lr": dict(regressors.lrs),
            },
            "training": {
                "iterations": tr.get("maml", {}).get("iterations"),
                "seconds": round(sum(tr.get(m, {}).get("seconds", 0.0) for m in METHODS), 1),
                **{m: _card_log(tr.get(m, {})) for m in METHODS},
                "hardware": hardware_description(cpu),
                "command": command,
            },
            "evaluation": {
                "metric": "MSE over 100 evenly spaced x in [-5, 5] after adapting on K support points, mean ± 95% CI",
                "device": hardware_description(cpu),
                "results": [r.as_dict() for r in results],
            },
            "checkpoint_bytes": Path(checkpoint_path).stat().st_size,
            "torch": torch.__version__,
        }
    )


def train_and_save(
    out: str | Path,
    command: str,
    *,
    eval_tasks: int = 600,
    eval_seed: int = EVAL_SEED,
    eval_shots: Sequence[int] = (5, 10),
    eval_steps: Sequence[int] = (0, 1, 10, 100),
    progress: Progress | None = None,
    **train_options: Any,
) -> tuple[Path, list[MSEResult]]:
    """Train all three (`train_all` options), save them, evaluate, and write the card beside the checkpoint."""
    regressors = train_all(progress=progress, **train_options)
    path = save_regressors(out, regressors)
    results = evaluate(regressors, eval_tasks, eval_shots, eval_steps, seed=eval_seed)
    write_card(path, make_card(path, regressors, results, command))
    return path, results


def update_card(checkpoint_path: str | Path, regressors: SineRegressors, results: Sequence[MSEResult]) -> Path:
    """Merge new results into the card (replacing the same method/K/steps), creating the card if needed."""
    card = read_card(checkpoint_path) or make_card(checkpoint_path, regressors, [], command="")
    new = {(r.method, r.k_shot, r.steps) for r in results}
    rows = [r for r in card.evaluation.results if isinstance(r, SineResult)]
    kept = [r for r in rows if (r.method, r.k_shot, r.steps) not in new]
    order = {m: i for i, m in enumerate(METHODS)}
    merged = sorted(
        kept + [SineResult.from_dict(r.as_dict()) for r in results],
        key=lambda r: (order.get(r.method, 9), r.steps, r.k_shot),
    )
    card = card.with_evaluation(device=hardware_description(torch.device("cpu")), results=tuple(merged))
    return write_card(checkpoint_path, card)

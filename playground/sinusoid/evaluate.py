"""Mean post-adaptation MSE with a 95% CI over seeded test tasks, the same tasks for every method."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.func import vmap

from playground.evaluation.few_shot import confidence_interval_95
from playground.sinusoid.model import query_losses
from playground.sinusoid.tasks import SineTaskSampler, sine, x_grid
from playground.sinusoid.train import METHODS, SineRegressors

EVAL_SEED = 1  # training samplers use seed 0 by default: a different stream of tasks


@dataclass
class MSEResult:
    """Per-task MSEs of one method at one K after ``steps`` inner steps, and their mean with 95% CI."""

    method: str
    k_shot: int
    steps: int
    lr: float
    mses: list[float]
    seed: int = EVAL_SEED  # of the test tasks' sampler

    @property
    def tasks(self) -> int:
        return len(self.mses)

    @property
    def mean(self) -> float:
        return sum(self.mses) / len(self.mses)

    @property
    def median(self) -> float:
        """Robust to the few tasks whose K points leave the wave badly determined (heavy tail at K=5)."""
        return float(torch.tensor(self.mses).median())

    @property
    def ci95(self) -> float:
        return confidence_interval_95(self.mses)

    def format(self) -> str:
        """``0.123 ± 0.010``."""
        return f"{self.mean:.3f} ± {self.ci95:.3f}"

    def as_dict(self) -> dict:
        return {
            "method": self.method,
            "k_shot": self.k_shot,
            "steps": self.steps,
            "lr": self.lr,
            "tasks": self.tasks,
            "seed": self.seed,
            "mse": round(self.mean, 6),
            "ci95": round(self.ci95, 6),
            "median": round(self.median, 6),
            "text": self.format(),
        }


def evaluate(
    regressors: SineRegressors,
    n_tasks: int = 600,
    shots: Sequence[int] = (5, 10),
    steps: Sequence[int] = (0, 1, 10),
    seed: int = EVAL_SEED,
    n_points: int = 100,
    methods: Sequence[str] = METHODS,
) -> list[MSEResult]:
    """MSE over ``n_points`` evenly spaced x in [-5, 5] after each of ``steps`` SGD steps on K support points.

    The ``n_tasks`` tasks come from ``SineTaskSampler(seed)``, so every method (and every
    call with the same seed) sees the same waves and support points; K=5 uses the first 5
    of the K=10 points, so the two settings share their tasks too (and a K's figures do not
    depend on which other K are evaluated with it). Each method adapts with
    its own step size (``regressors.lrs``). Step 0 is the unadapted regressor.
    """
    if n_tasks < 1 or not shots or not steps or min(shots) < 1 or min(steps) < 0:
        raise ValueError("need n_tasks >= 1, shots >= 1 and steps >= 0")
    unknown = [m for m in methods if m not in regressors.models]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    tasks = SineTaskSampler(seed).sample_batch(n_tasks, max(shots), 0)
    qx = x_grid(n_points).expand(n_tasks, -1)
    qy = sine(qx, tasks.amplitude[:, None], tasks.phase[:, None])
    results = []
    for method in methods:
        model, lr = regressors.models[method], regressors.lrs[method]
        params = {k: v.detach() for k, v in model.named_parameters()}  # never written to

        def one(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor, qy: torch.Tensor) -> torch.Tensor:
            return query_losses(model, params, sx, sy, qx, qy, max(steps), lr)  # noqa: B023 (used at once)

        for k in shots:
            with torch.enable_grad():
                # All tasks at once: [n_tasks, max(steps) + 1] query MSEs, one row per task.
                losses = vmap(one)(tasks.support_x[:, :k], tasks.support_y[:, :k], qx, qy).detach()
            for s in steps:
                results.append(MSEResult(method, k, s, lr, losses[:, s].tolist(), seed))
    return results


def results_table(results: Sequence[MSEResult | dict]) -> str:
    """Markdown: one row per method and step count, one column per K, cells ``mean ± ci95``."""
    rows = [r.as_dict() if isinstance(r, MSEResult) else r for r in results]
    shots = sorted({r["k_shot"] for r in rows})
    keys = list(dict.fromkeys((r["method"], r["steps"], r["lr"]) for r in rows))
    cell = {(r["method"], r["steps"], r["lr"], r["k_shot"]): r["text"] for r in rows}
    lines = ["| method | inner steps | step size | " + " | ".join(f"MSE, K={k}" for k in shots) + " |"]
    lines.append("|" + " --- |" * (3 + len(shots)))
    for m, s, lr in keys:
        lines.append(f"| {m} | {s} | {lr:g} | " + " | ".join(cell.get((m, s, lr, k), "–") for k in shots) + " |")
    return "\n".join(lines)

"""Training the three regressors: MAML, the pooled-data "pretrained" baseline, and "scratch".

All three start from the same seeded initialisation and see the same stream of tasks (one
`SineTaskSampler` per run, same seed), so they differ only in how they learn:

* MAML (second order by default) learns an initialisation from which ``inner_steps`` SGD
  steps of size ``inner_lr`` on a task's K support points fit its query points.
* "pretrained" regresses the pooled support and query points of every sampled task, with
  no adaptation in the loop: the paper's baseline. Its best guess is the average wave.
* "scratch" is the shared initialisation, untrained: what a few steps on K points give
  without any prior. It gets its own, larger adaptation step size (``SCRATCH_LR``) because
  0.01 barely moves a random network in 10 steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.func import vmap

from playground.sinusoid.model import SineFit, SineRegressor, check_lr, fit, inner_sgd, mse, new_regressor
from playground.sinusoid.tasks import SineTaskBatch, SineTaskSampler

METHODS = ("maml", "pretrained", "scratch")
INNER_LR = 0.01  # the paper's MAML step size, also used to fine-tune the pretrained baseline
SCRATCH_LR = 0.02  # of 0.01-0.1, the best after 1 and 10 steps; 0.05 is worse, 0.1 diverges to NaN

# progress(method, iteration, iterations, running loss)
Progress = Callable[[str, int, int, float], None]


@dataclass
class SineRegressors:
    """The three trained regressors, each with the step size it adapts with, and how they were trained."""

    models: dict[str, SineRegressor]
    lrs: dict[str, float]
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [m for m in METHODS if m not in self.models or m not in self.lrs]
        if missing:
            raise ValueError(f"missing regressors or learning rates for {missing}")
        for m in self.models.values():
            m.eval()

    def fit(
        self, method: str, support_x: torch.Tensor, support_y: torch.Tensor, steps: int, lr: float | None = None
    ) -> SineFit:
        """`fit` the ``method``'s regressor with its own step size unless ``lr`` is given."""
        if method not in self.models:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        return fit(self.models[method], support_x, support_y, steps, self.lrs[method] if lr is None else lr)


def _loop(
    name: str,
    iterations: int,
    step: Callable[[], torch.Tensor],
    progress: Progress | None,
) -> dict[str, Any]:
    """Run ``step`` (one optimiser update, returning its loss) ``iterations`` times; time and log it."""
    start = time.perf_counter()
    running, history = None, []
    every = max(1, iterations // 20)
    for it in range(1, iterations + 1):
        loss = float(step())
        if not math.isfinite(loss):
            raise FloatingPointError(f"{name} training diverged at iteration {it} (loss {loss}); lower the lr")
        running = loss if running is None else 0.98 * running + 0.02 * loss
        if it % every == 0 or it == iterations:
            history.append([it, round(running, 5)])
            if progress is not None:
                progress(name, it, iterations, running)
    return {"iterations": iterations, "seconds": round(time.perf_counter() - start, 1), "loss_history": history}


def train_maml(
    *,
    iterations: int,
    meta_batch: int = 25,
    k_shot: int = 10,
    n_query: int = 10,
    inner_lr: float = INNER_LR,
    inner_steps: int = 1,
    outer_lr: float = 1e-3,
    first_order: bool = False,
    seed: int = 0,
    hidden: int = 40,
    progress: Progress | None = None,
) -> tuple[SineRegressor, dict[str, Any]]:
    """Meta-train a regressor with MAML; returns it and its training log (loss = post-adaptation query MSE)."""
    check_lr(inner_lr), check_lr(outer_lr)
    model = new_regressor(seed, hidden)
    sampler = SineTaskSampler(seed)
    opt = torch.optim.Adam(model.parameters(), lr=outer_lr)
    params = dict(model.named_parameters())  # the live parameters: autograd reaches them through the inner loop

    def task_loss(sx: torch.Tensor, sy: torch.Tensor, qx: torch.Tensor, qy: torch.Tensor) -> torch.Tensor:
        fast = inner_sgd(model, params, sx, sy, inner_steps, inner_lr, first_order)[-1]
        return mse(model, fast, qx, qy)

    def step() -> torch.Tensor:
        b = sampler.sample_batch(meta_batch, k_shot, n_query)
        # vmap runs the meta-batch's tasks as one batched computation: on this tiny model it
        # is several times faster than a Python loop over 25 tasks.
        loss = vmap(task_loss)(b.support_x, b.support_y, b.query_x, b.query_y).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    log = _loop("maml", iterations, step, progress)
    config = dict(meta_batch=meta_batch, k_shot=k_shot, n_query=n_query, inner_lr=inner_lr, inner_steps=inner_steps)
    config.update(outer_lr=outer_lr, first_order=first_order, seed=seed)
    return model.eval(), {**log, "config": config}


def pooled(batch: SineTaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """All support and query points of a batch of tasks, as one regression data set."""
    x = torch.cat([batch.support_x, batch.query_x], dim=1).reshape(-1)
    y = torch.cat([batch.support_y, batch.query_y], dim=1).reshape(-1)
    return x, y


def train_pretrained(
    *,
    iterations: int,
    meta_batch: int = 25,
    k_shot: int = 10,
    n_query: int = 10,
    lr: float = 1e-3,
    seed: int = 0,
    hidden: int = 40,
    progress: Progress | None = None,
) -> tuple[SineRegressor, dict[str, Any]]:
    """One regressor trained by Adam on the pooled points of the same task stream MAML sees."""
    check_lr(lr)
    model = new_regressor(seed, hidden)
    sampler = SineTaskSampler(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def step() -> torch.Tensor:
        x, y = pooled(sampler.sample_batch(meta_batch, k_shot, n_query))
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    log = _loop("pretrained", iterations, step, progress)
    config = dict(meta_batch=meta_batch, k_shot=k_shot, n_query=n_query, lr=lr, seed=seed)
    return model.eval(), {**log, "config": config}


def train_scratch(*, seed: int = 0, hidden: int = 40) -> tuple[SineRegressor, dict[str, Any]]:
    """The untrained initialisation the other two start from (nothing to train: all its learning is `fit`)."""
    return new_regressor(seed, hidden).eval(), {"iterations": 0, "seconds": 0.0, "config": {"seed": seed}}


def train_all(
    *,
    iterations: int,
    pretrain_iterations: int | None = None,
    meta_batch: int = 25,
    k_shot: int = 10,
    n_query: int = 10,
    inner_lr: float = INNER_LR,
    inner_steps: int = 1,
    outer_lr: float = 1e-3,
    scratch_lr: float = SCRATCH_LR,
    first_order: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
) -> SineRegressors:
    """MAML, the pretrained baseline (``pretrain_iterations``, default the same) and scratch, in one bundle."""
    common = dict(meta_batch=meta_batch, k_shot=k_shot, n_query=n_query, seed=seed, progress=progress)
    maml, maml_log = train_maml(
        iterations=iterations,
        inner_lr=inner_lr,
        inner_steps=inner_steps,
        outer_lr=outer_lr,
        first_order=first_order,
        **common,
    )
    pretrained, pre_log = train_pretrained(
        iterations=iterations if pretrain_iterations is None else pretrain_iterations, lr=outer_lr, **common
    )
    scratch, scratch_log = train_scratch(seed=seed)
    return SineRegressors(
        {"maml": maml, "pretrained": pretrained, "scratch": scratch},
        {"maml": inner_lr, "pretrained": inner_lr, "scratch": check_lr(scratch_lr)},
        {"maml": maml_log, "pretrained": pre_log, "scratch": scratch_log},
    )

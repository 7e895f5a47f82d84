"""What the sine page computes: every method fitted to one set of points, step by step, with its errors.

```python
from playground.sinusoid import SineTaskSampler, explore, load_regressors

regressors = load_regressors("assets/sinusoid/sinusoid.pt")
task = SineTaskSampler(seed=3).sample(k_shot=5)
run = explore(regressors, task.support_x, task.support_y, steps=10, truth=task.true_curve)
run.curves()["maml"]  # [11, 200]: MAML's curve after each step 0..10 on run.grid
run.table(step=10)  # per method: step size, support MSE, MSE against the true curve
```

Placed points (a person's own clicks) go through `points_to_tensors`, which refuses what
cannot be fitted with a clear `ValueError`; `lies_on` tells whether they sit on a task's
wave, i.e. whether a true curve exists to measure against.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from playground.sinusoid.tasks import X_RANGE, SineTask, x_grid
from playground.sinusoid.train import METHODS, SineRegressors
from playground.zoo.card import ModelCard, SineResult

MAX_POINTS = 50  # more than any few-shot task needs; keeps a page's state and figure small
Y_LIMIT = 6.0  # waves reach |y| <= 5; a placed point beyond this is a slip, not a task
EVAL_POINTS = 100  # the model card's metric: MSE over 100 evenly spaced x in [-5, 5]


@dataclass(frozen=True)
class MethodRun:
    """One method fitted to the points: its curve and errors after each inner step 0..steps."""

    method: str
    lr: float
    curves: torch.Tensor  # [steps + 1, G] on the exploration's grid
    support_mse: list[float]  # [steps + 1]
    true_mse: list[float] | None  # [steps + 1] over EVAL_POINTS x, when the true curve is known

    @property
    def diverged(self) -> bool:
        """True when the support MSE became inf or NaN (the step size is too large)."""
        return not all(math.isfinite(v) for v in self.support_mse)


@dataclass(frozen=True)
class Exploration:
    """Every chosen method fitted to the same support points, and the true curve when there is one."""

    grid: torch.Tensor  # [G]
    support_x: torch.Tensor  # [K]
    support_y: torch.Tensor  # [K]
    true_curve: torch.Tensor | None  # [G]
    runs: dict[str, MethodRun]
    steps: int

    def curves(self) -> dict[str, torch.Tensor]:
        """Each method's curves ``[steps + 1, G]``, by method."""
        return {m: r.curves for m, r in self.runs.items()}

    def table(self, step: int | None = None) -> list[dict[str, Any]]:
        """One row per method after ``step`` steps (default: the last): method, lr, support_mse, true_mse."""
        step = self.steps if step is None else step
        if not 0 <= step <= self.steps:
            raise ValueError(f"step must be between 0 and {self.steps} (got {step})")
        return [
            {
                "method": m,
                "lr": r.lr,
                "support_mse": r.support_mse[step],
                "true_mse": None if r.true_mse is None else r.true_mse[step],
            }
            for m, r in self.runs.items()
        ]


def explore(
    regressors: SineRegressors,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    steps: int,
    *,
    lr: float | None = None,
    methods: Sequence[str] = METHODS,
    truth: Callable[[torch.Tensor], torch.Tensor] | None = None,
    grid: torch.Tensor | None = None,
) -> Exploration:
    """Fit each of ``methods`` by ``steps`` SGD steps (its own step size unless ``lr``); curves and MSEs per step."""
    if not methods:
        raise ValueError("choose at least one method")
    grid = x_grid() if grid is None else grid
    eval_x = x_grid(EVAL_POINTS)
    eval_y = None if truth is None else truth(eval_x)
    runs = {}
    for method in dict.fromkeys(methods):  # keeps the order, drops repeats
        fitted = regressors.fit(method, support_x, support_y, steps, lr)
        true_mse = None
        if eval_y is not None:
            true_mse = [float(((fitted.predict(eval_x, s) - eval_y) ** 2).mean()) for s in range(steps + 1)]
        runs[method] = MethodRun(method, fitted.lr, fitted.curves(grid), list(fitted.support_loss), true_mse)
    true_curve = None if truth is None else truth(grid)
    return Exploration(grid, support_x.reshape(-1), support_y.reshape(-1), true_curve, runs, steps)


def points_to_tensors(points: Sequence[Sequence[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Placed ``(x, y)`` points as support tensors; `ValueError` for none, too many, or any off the plot."""
    if len(points) == 0:
        raise ValueError("no points placed yet: place at least one")
    if len(points) > MAX_POINTS:
        raise ValueError(f"at most {MAX_POINTS} points can be fitted (got {len(points)})")
    xs, ys = [], []
    for i, p in enumerate(points, 1):
        try:
            x, y = (float(v) for v in p)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"point {i} is not an (x, y) pair of numbers: {p!r}") from exc
        if not (X_RANGE[0] <= x <= X_RANGE[1] and -Y_LIMIT <= y <= Y_LIMIT):
            raise ValueError(
                f"point {i} ({x:g}, {y:g}) is outside x in [{X_RANGE[0]:g}, {X_RANGE[1]:g}], "
                f"y in [{-Y_LIMIT:g}, {Y_LIMIT:g}]"
            )
        xs.append(x)
        ys.append(y)
    return torch.tensor(xs), torch.tensor(ys)


def lies_on(task: SineTask, x: torch.Tensor, y: torch.Tensor, tol: float = 1e-3) -> bool:
    """True when every point ``(x, y)`` is on the task's wave (within ``tol``), so its true curve applies."""
    return x.numel() > 0 and bool(((task.true_curve(x) - y).abs() <= tol).all())


def snap(task: SineTask, x: float) -> tuple[float, float]:
    """The point of the task's wave at ``x`` (rounded like a placed point)."""
    x = round(float(x), 3)  # rounded first, so y is the wave's value at the stored x
    return x, round(float(task.true_curve(torch.tensor(x))), 3)


def card_mse(card: ModelCard | None, method: str, k_shot: int, steps: int, lr: float) -> str | None:
    """The model card's ``mean ± ci95`` MSE over its test tasks for this setting, or None if not measured."""
    for r in card.evaluation.results if card else ():
        if not isinstance(r, SineResult) or (r.method, r.k_shot, r.steps) != (method, k_shot, steps):
            continue
        if math.isclose(math.nan if r.lr is None else r.lr, lr, rel_tol=1e-9):
            return r.text
    return None

"""The 1-40-40-1 ReLU regressor, its functional inner loop, and `fit` (adapt without side effects).

Everything here runs on a dict of parameter tensors (`playground.models.functional.functional_forward`):
adapting builds new tensors and never writes to a module's weights, not even during a call, so one loaded regressor
can be fitted to any number of tasks (and the page can draw every step's curve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import grad

from playground.models.functional import functional_forward

Params = dict[str, torch.Tensor]


class SineRegressor(nn.Module):
    """The paper's regressor: an MLP 1 -> 40 -> 40 -> 1 with ReLU, applied to each scalar input."""

    def __init__(self, hidden: int = 40):
        super().__init__()
        self.hidden = hidden
        self.net = nn.Sequential(
            nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Inputs of any shape are scalars: the output has the input's shape.
        return self.net(x.reshape(-1, 1)).reshape(x.shape)


def new_regressor(seed: int, hidden: int = 40) -> SineRegressor:
    """A freshly initialised regressor, the same for the same seed (torch's global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SineRegressor(hidden)


def parameters_of(model: nn.Module) -> Params:
    """The model's parameters as a dict (the tensors themselves, no copy)."""
    return dict(model.named_parameters())


def forward(model: nn.Module, params: Params, x: torch.Tensor) -> torch.Tensor:
    return functional_forward(model, params, x)


def mse(model: nn.Module, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((forward(model, params, x) - y) ** 2).mean()


def inner_sgd(
    model: nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float,
    first_order: bool = False,
) -> list[Params]:
    """``steps`` plain SGD steps on the MSE of (x, y): the parameters before and after every step.

    Gradients come from ``torch.func.grad``, which stays differentiable with respect to
    ``params``: when they are the meta-parameters, backpropagating through the result gives
    MAML's second-order meta-gradient (``first_order`` cuts it by detaching the inner
    gradients). Works under ``vmap`` (one task per call).
    """
    trajectory = [params]
    for _ in range(steps):
        g = grad(mse, argnums=1)(model, params, x, y)
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        params = {k: params[k] - lr * g[k] for k in params}
        trajectory.append(params)
    return trajectory


def query_losses(
    model: nn.Module,
    params: Params,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    query_y: torch.Tensor,
    steps: int,
    lr: float,
) -> torch.Tensor:
    """Query MSE after each inner step 0..steps (shape ``[steps + 1]``); vmap it over tasks."""
    trajectory = inner_sgd(model, params, support_x, support_y, steps, lr)
    return torch.stack([mse(model, p, query_x, query_y) for p in trajectory])


def check_lr(lr: float) -> float:
    if not (isinstance(lr, (int, float)) and 0 < lr < math.inf):
        raise ValueError(f"lr must be a positive finite number (got {lr})")
    return float(lr)


@dataclass(frozen=True)
class SineFit:
    """A regressor fitted to one task's support points, step by step.

    ``params[s]`` are the weights after ``s`` inner steps (``params[0]`` are the regressor's
    own), ``support_loss[s]`` the support MSE there. Predicting never needs the module's
    stored weights, only its architecture.
    """

    model: SineRegressor
    params: list[Params]
    support_loss: list[float]
    lr: float

    @property
    def steps(self) -> int:
        return len(self.params) - 1

    @property
    def diverged(self) -> bool:
        """True when the support loss became inf or NaN (the learning rate was too large)."""
        return not all(math.isfinite(v) for v in self.support_loss)

    @torch.no_grad()
    def predict(self, x_grid: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The fitted curve at ``x_grid`` (any shape; same shape back) after ``step`` steps (default: the last)."""
        step = self.steps if step is None else step
        if not 0 <= step <= self.steps:
            raise ValueError(f"step must be between 0 and {self.steps} (got {step})")
        return forward(self.model, self.params[step], x_grid.to(torch.get_default_dtype()))

    @torch.no_grad()
    def curves(self, x_grid: torch.Tensor) -> torch.Tensor:
        """Every step's curve: ``[steps + 1, *x_grid.shape]``."""
        return torch.stack([self.predict(x_grid, s) for s in range(self.steps + 1)])


def fit(model: SineRegressor, support_x: torch.Tensor, support_y: torch.Tensor, steps: int, lr: float) -> SineFit:
    """Adapt ``model`` to the support points by ``steps`` SGD steps of size ``lr``; ``model`` is left unchanged."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0 (got {steps})")
    lr = check_lr(lr)
    support_x, support_y = support_x.reshape(-1), support_y.reshape(-1)
    if support_x.numel() == 0 or support_x.shape != support_y.shape:
        raise ValueError(f"need as many support x as y, at least one (got {support_x.numel()} and {support_y.numel()})")
    # Detached views of the stored weights: the inner loop only builds new tensors from them,
    # so the module is bit-identical afterwards and no gradient reaches its .grad.
    params = {k: v.detach() for k, v in parameters_of(model).items()}
    with torch.enable_grad():  # callers (a page) may be inside no_grad; the inner loop needs gradients
        trajectory = inner_sgd(model, params, support_x, support_y, steps, lr)
    trajectory = [{k: v.detach() for k, v in p.items()} for p in trajectory]
    with torch.no_grad():
        losses = [float(mse(model, p, support_x, support_y)) for p in trajectory]
    return SineFit(model, trajectory, losses, lr)

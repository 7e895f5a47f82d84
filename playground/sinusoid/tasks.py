"""Sine-wave regression tasks (Finn et al. 2017, section 5.1), drawn from a seeded generator."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# The paper's task distribution: y = A sin(x - phi).
AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)


def sine(x: torch.Tensor, amplitude: torch.Tensor | float, phase: torch.Tensor | float) -> torch.Tensor:
    """``amplitude * sin(x - phase)``, broadcasting a batch of tasks ``[n, 1]`` over points ``[n, m]``."""
    return amplitude * torch.sin(x - phase)


def x_grid(points: int = 200) -> torch.Tensor:
    """``points`` evenly spaced inputs covering the whole input range (for curves and evaluation)."""
    return torch.linspace(*X_RANGE, points)


@dataclass(frozen=True)
class SineTask:
    """One task: its sine wave and K labelled support points (1-D tensors of length K)."""

    amplitude: float
    phase: float
    support_x: torch.Tensor
    support_y: torch.Tensor

    @property
    def k_shot(self) -> int:
        return self.support_x.shape[0]

    def true_curve(self, x: torch.Tensor) -> torch.Tensor:
        """The task's noiseless function at ``x`` (any shape; returns the same shape)."""
        return sine(x, self.amplitude, self.phase)

    def with_shots(self, k_shot: int) -> SineTask:
        """The same wave with only its first ``k_shot`` support points (so K=5 and K=10 share tasks)."""
        if not 1 <= k_shot <= self.k_shot:
            raise ValueError(f"k_shot must be between 1 and {self.k_shot} (got {k_shot})")
        return SineTask(self.amplitude, self.phase, self.support_x[:k_shot], self.support_y[:k_shot])


@dataclass(frozen=True)
class SineTaskBatch:
    """``n`` tasks as stacked tensors: amplitude/phase ``[n]``, support ``[n, K]``, query ``[n, Q]``."""

    amplitude: torch.Tensor
    phase: torch.Tensor
    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def __len__(self) -> int:
        return self.amplitude.shape[0]

    def task(self, i: int) -> SineTask:
        return SineTask(float(self.amplitude[i]), float(self.phase[i]), self.support_x[i], self.support_y[i])

    def tasks(self) -> list[SineTask]:
        return [self.task(i) for i in range(len(self))]


class SineTaskSampler:
    """Seeded source of sine tasks: the same seed gives the same tasks, in the same order.

    It owns its ``torch.Generator``, so sampling never touches (or depends on) torch's global
    random state, and two samplers never interfere.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def _uniform(self, low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=self.generator)

    def sample_batch(self, n: int, k_shot: int = 10, n_query: int = 10) -> SineTaskBatch:
        """``n`` tasks with ``k_shot`` support and ``n_query`` query points each, x ~ U[-5, 5]."""
        if n < 1 or k_shot < 1 or n_query < 0:
            raise ValueError(f"need n >= 1, k_shot >= 1, n_query >= 0 (got {n}, {k_shot}, {n_query})")
        amplitude = self._uniform(*AMPLITUDE_RANGE, n)
        phase = self._uniform(*PHASE_RANGE, n)
        # Drawn point by point ([points, tasks], then transposed): the first k support points of
        # every task are the same whatever k_shot is asked for, so K=5 and K=10 share tasks.
        x = self._uniform(*X_RANGE, k_shot + n_query, n).T
        y = sine(x, amplitude[:, None], phase[:, None])
        return SineTaskBatch(amplitude, phase, x[:, :k_shot], y[:, :k_shot], x[:, k_shot:], y[:, k_shot:])

    def sample(self, k_shot: int = 10) -> SineTask:
        """One task with ``k_shot`` support points."""
        return self.sample_batch(1, k_shot, 0).task(0)

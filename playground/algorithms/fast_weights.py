"""Fast weights: a task's adapted copy of a gradient-based learner's weights, kept apart from the meta-parameters.

The MAML family adapts by building new tensors (`Params`) from the meta-parameters, never by writing to them,
so one shared model serves every visitor. `FunctionalPredictor` predicts with such a set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from playground.algorithms.base import Predictor, StepRecord
from playground.models.exported import GroupStatsConv4

if TYPE_CHECKING:
    from playground.algorithms.maml import MAML

Params = dict[str, torch.Tensor]
# Called before each inner update with the step, the support loss and accuracy, and the weights they were measured at.
OnStep = Callable[[int, torch.Tensor, torch.Tensor, Params], None]


class FunctionalPredictor(Predictor):
    """A task-adapted set of fast weights, used without touching the meta-parameters."""

    def __init__(self, learner: MAML, fast: Params, support_x: torch.Tensor, trace: list[StepRecord]):
        self.learner, self.fast, self.support_x, self.trace = learner, fast, support_x, trace
        self.n_way = fast["head.weight"].shape[0]

    def _batch(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        # Transductive batch norm needs at least two images for batch statistics: a lone
        # query is normalised together with the support set instead of on its own.
        x = x.to(self.support_x.device)
        if x.shape[0] >= 2 or (x.shape[0] == 1 and self.learner.bn == "per_example"):
            return x, 0
        return torch.cat([self.support_x, x]), self.support_x.shape[0]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        batch, skip = self._batch(x)
        return self.learner.forward_fast(self.fast, batch)[skip:]

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        batch, skip = self._batch(x)
        return self.learner.features_fast(self.fast, batch)[skip:]

    def export_module(self, group: int = 1) -> nn.Module:
        """The adapted fast weights; batch statistics per group as `_batch` takes them (a lone image: with the
        support set; per-example batch norm: each image its own)."""
        learner, fast = self.learner, self.fast
        blocks = [
            tuple(fast.get(f"body.features.{i}.{k}") for k in ("0.weight", "0.bias", "1.weight", "1.bias"))
            for i in range(len(learner.body.features))
        ]
        per_example = learner.bn == "per_example"
        context = self.support_x if group == 1 and not per_example else None
        eps = learner.body.features[0][1].eps
        return GroupStatsConv4(blocks, eps, fast["head.weight"], fast["head.bias"], context, per_example)

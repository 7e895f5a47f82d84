"""Baseline: nearest neighbour on raw pixels. Nothing is meta-learned; every comparison needs it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from playground.algorithms.base import MetaLearner, Predictor, StepRecord, StepStats, one_of, register
from playground.data.episodes import TaskBatch
from playground.models.exported import PerImage, best_per_class, cosine, squared_distances

METRICS = ("euclidean", "cosine")


class PixelPredictor(Predictor):
    def __init__(self, learner: PixelNearestNeighbour, support_x: torch.Tensor, support_y: torch.Tensor, n_way: int):
        self.learner, self.n_way = learner, n_way
        self.support = support_x.flatten(1)
        self.support_y = support_y
        self.trace = [StepRecord(0, 0.0, 1.0)]  # every support image is its own nearest neighbour

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.support.device).flatten(1)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Per class, minus the distance to its nearest support image, scaled by ``temperature``."""
        return self.learner.class_scores(self.embed(x), self.support, self.support_y, self.n_way)

    def export_module(self, group: int = 1) -> nn.Module:
        """The support images themselves: each image is compared with them alone."""
        member = F.one_hot(self.support_y, self.n_way).bool()
        return PerImage(_NearestModule(self.support, member, self.learner.metric, self.learner.temperature))


class _NearestModule(nn.Module):
    """`PixelNearestNeighbour.class_scores` against support images held as a buffer."""

    def __init__(self, support: torch.Tensor, member: torch.Tensor, metric: str, temperature: float):
        super().__init__()
        self.register_buffer("support", support.detach().clone())
        self.register_buffer("member", member.detach().clone())
        self.metric, self.temperature = metric, float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = x.flatten(1)
        if self.metric == "cosine":
            dist = 1 - cosine(q, self.support)
        else:
            dist = squared_distances(q, self.support).sqrt() / q.shape[-1] ** 0.5
        return -best_per_class(dist, self.member, largest=False) / self.temperature


@register
class PixelNearestNeighbour(MetaLearner):
    name = "pixel-nn"
    title = "Pixel neighbour"
    not_exportable = ""

    def __init__(self, *, metric: str = "euclidean", temperature: float = 0.1, **base):
        super().__init__(**base)
        one_of("metric", metric, METRICS)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.metric, self.temperature = metric, temperature

    def class_scores(self, query: torch.Tensor, support: torch.Tensor, support_y: torch.Tensor, n_way: int):
        if self.metric == "cosine":
            sim = F.normalize(query, dim=-1) @ F.normalize(support, dim=-1).transpose(-1, -2)
            dist = 1 - sim
        else:
            dist = torch.cdist(query, support) / query.shape[-1] ** 0.5  # RMS pixel difference
        # Each class scores by its closest support image; the softmax temperature only shapes the
        # probabilities shown, never which class wins.
        mask = F.one_hot(support_y, n_way).bool().unsqueeze(-3)  # [..., 1, n_support, n_way]
        per_class = dist.unsqueeze(-1).masked_fill(~mask, float("inf")).amin(-2)
        return -per_class / self.temperature

    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("pixel-nn has nothing to meta-train")

    def meta_train_step(self, tasks: TaskBatch, grad_hook=None) -> StepStats:
        """Nothing to learn: reports the query accuracy of the batch, so training logs stay comparable."""
        return StepStats(0.0, float(self.episode_accuracies(tasks).mean()))

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> PixelPredictor:
        n_way = self.check_support(support_x, support_y)
        return PixelPredictor(self, support_x.to(self.device), support_y.to(self.device), n_way)

    @torch.no_grad()
    def episode_accuracies(
        self, tasks: TaskBatch, n_steps: int | None = None, inner_lr: float | None = None
    ) -> torch.Tensor:
        n_way = int(tasks.support_y.max()) + 1
        logits = self.class_scores(tasks.query_x.flatten(2), tasks.support_x.flatten(2), tasks.support_y, n_way)
        return (logits.argmax(-1) == tasks.query_y).float().mean(-1)

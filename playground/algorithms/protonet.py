"""Prototypical Networks (Snell et al. 2017): classify by distance to each class's mean embedding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from playground.algorithms.base import (
    DecisionMatrix,
    MetaLearner,
    Predictor,
    StepRecord,
    accuracy,
    one_of,
    register,
    support_fit,
)
from playground.data.episodes import TaskBatch
from playground.models.exported import Embed, MetricHead, PerImage, batch_independent

METRICS = ("euclidean", "cosine")


def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Mean embedding per class: [..., n, d] with labels [..., n] -> [..., n_way, d]."""
    one_hot = F.one_hot(labels, n_way).to(embeddings.dtype)  # [..., n, N]
    counts = one_hot.sum(-2).unsqueeze(-1)  # [..., N, 1]
    return one_hot.transpose(-1, -2) @ embeddings / counts


def proto_logits(query: torch.Tensor, protos: torch.Tensor, metric: str, scale: torch.Tensor) -> torch.Tensor:
    """Negative squared Euclidean distance, or scaled cosine similarity, to each prototype."""
    if metric == "euclidean":
        return -torch.cdist(query, protos).pow(2)
    return scale * F.normalize(query, dim=-1) @ F.normalize(protos, dim=-1).transpose(-1, -2)


class ProtoPredictor(Predictor):
    def __init__(self, learner: ProtoNet, protos: torch.Tensor, trace: list[StepRecord]):
        self.learner, self.prototypes, self.trace = learner, protos, trace
        self.n_way = protos.shape[0]

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner.encoder(x.to(self.prototypes.device))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner.logits_from_embeddings(self.embed(x), self.prototypes)

    @torch.no_grad()
    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """Squared Euclidean distance of each image to each prototype [n, n_way]."""
        return torch.cdist(self.embed(x), self.prototypes_for(x)).pow(2)

    def prototypes_for(self, x: torch.Tensor) -> torch.Tensor:
        return self.prototypes

    def decisions(self, x: torch.Tensor) -> list[DecisionMatrix]:
        return super().decisions(x) + [
            DecisionMatrix("squared distance to each prototype", self.distances(x), "class", "squared distance")
        ]

    def export_module(self, group: int = 1) -> nn.Module:
        """The encoder and the prototypes: each image is embedded alone (running batch-norm statistics)."""
        learner = self.learner
        head = MetricHead(self.prototypes, learner.metric, float(learner.log_scale.detach().exp()))
        return PerImage(Embed(learner.encoder, head))


@register
class ProtoNet(MetaLearner):
    name = "protonet"
    title = "ProtoNet"
    trains_live = True
    backbones = ("conv4", "resnet12")

    def __init__(self, *, metric: str = "euclidean", hidden: int = 64, model: nn.Module | None = None, **base):
        super().__init__(**base)
        one_of("metric", metric, METRICS)
        self.metric, self.hidden = metric, hidden
        self.encoder = model if model is not None else self.make_backbone(hidden, track_running_stats=True)
        # Cosine similarity lies in [-1, 1]; a learned temperature lets the softmax get confident.
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)), requires_grad=metric == "cosine")

    def export_problem(self) -> str:
        if not batch_independent(self.encoder):
            return "its encoder normalises with batch statistics, so an image's embedding depends on its batch"
        return ""

    def logits_from_embeddings(self, query: torch.Tensor, protos: torch.Tensor) -> torch.Tensor:
        return proto_logits(query, protos, self.metric, self.log_scale.exp())

    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        b, ns = tasks.support_y.shape
        nq = tasks.query_y.shape[1]
        n_way = int(tasks.support_y.max()) + 1
        # One encoder pass over every image of every task: one set of batch-norm statistics.
        images = torch.cat([tasks.support_x.flatten(0, 1), tasks.query_x.flatten(0, 1)])
        z = self.encoder(images)
        zs, zq = z[: b * ns].view(b, ns, -1), z[b * ns :].view(b, nq, -1)
        logits = self.logits_from_embeddings(zq, prototypes(zs, tasks.support_y, n_way))
        loss = F.cross_entropy(logits.flatten(0, 1), tasks.query_y.flatten())
        return loss, accuracy(logits.flatten(0, 1), tasks.query_y.flatten())

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> ProtoPredictor:
        n_way = self.check_support(support_x, support_y)
        with torch.no_grad():
            support_x, support_y = support_x.to(self.device), support_y.to(self.device)
            z = self.encoder(support_x)
            protos = prototypes(z, support_y, n_way)
            logits = self.logits_from_embeddings(z, protos)
            trace = support_fit(F.cross_entropy(logits, support_y), logits, support_y)
        return ProtoPredictor(self, protos, trace)

    @torch.no_grad()
    def episode_accuracies(
        self, tasks: TaskBatch, n_steps: int | None = None, inner_lr: float | None = None
    ) -> torch.Tensor:
        tasks = tasks.to(self.device)
        b, ns = tasks.support_y.shape
        nq = tasks.query_y.shape[1]
        n_way = int(tasks.support_y.max()) + 1
        zs = self.encoder(tasks.support_x.flatten(0, 1)).view(b, ns, -1)
        zq = self.encoder(tasks.query_x.flatten(0, 1)).view(b, nq, -1)
        logits = self.logits_from_embeddings(zq, prototypes(zs, tasks.support_y, n_way))
        return (logits.argmax(-1) == tasks.query_y).float().mean(-1)

"""ProtoNet with soft k-means refinement (Ren et al. 2018): unlabeled queries move the prototypes.

Same encoder, same meta-training as `ProtoNet` (the refinement is not used in `meta_loss`);
only prediction differs, and it is transductive: the predictor refines the support
prototypes with the very images it is asked to classify, so a query's prediction depends
on the other queries of the call (a lone query still works: it pulls the prototypes a little
towards itself). Each of ``refine_steps`` steps is one soft k-means update (Ren et al.,
eq. 2-3, without distractor clusters)::

    m_jc = softmax_c(logit(z_j, p_c))                      # soft assignment of query j
    p_c  = (sum_i [y_i = c] z_i + sum_j m_jc z_j) / (n_c + sum_j m_jc)

where ``logit`` is ProtoNet's (negative squared Euclidean distance, or scaled cosine, after
``metric``). With ``refine_steps=0`` it is exactly ProtoNet. ``n_steps`` of `adapt` (the
gradient-based learners' inner steps, set by the app's MAML slider) is ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from playground.algorithms.base import StepRecord, register, support_fit
from playground.algorithms.protonet import ProtoNet, ProtoPredictor, prototypes
from playground.data.episodes import TaskBatch
from playground.models.exported import frozen_copy, metric_logits


def refine_prototypes(
    learner: ProtoNet,
    support_z: torch.Tensor,
    support_y: torch.Tensor,
    unlabeled_z: torch.Tensor,
    n_way: int,
    steps: int,
) -> torch.Tensor:
    """Soft k-means: [..., s, d] labeled and [..., u, d] unlabeled embeddings -> [..., n_way, d]."""
    one_hot = F.one_hot(support_y, n_way).to(support_z.dtype)  # [..., s, N]
    sums = one_hot.transpose(-1, -2) @ support_z  # [..., N, d]
    counts = one_hot.sum(-2)  # [..., N]
    protos = sums / counts.unsqueeze(-1)
    for _ in range(steps):
        m = learner.logits_from_embeddings(unlabeled_z, protos).softmax(-1)  # [..., u, N]
        protos = (sums + m.transpose(-1, -2) @ unlabeled_z) / (counts + m.sum(-2)).unsqueeze(-1)
    return protos


class SoftKMeansPredictor(ProtoPredictor):
    """``prototypes`` are the support means; every prediction refines them with its own images."""

    def __init__(
        self,
        learner: ProtoNetSoftKMeans,
        protos: torch.Tensor,
        support_z: torch.Tensor,
        support_y: torch.Tensor,
        trace: list[StepRecord],
    ):
        super().__init__(learner, protos, trace)
        self.support_z, self.support_y = support_z, support_y

    @torch.no_grad()
    def refined_prototypes(self, x: torch.Tensor) -> torch.Tensor:
        """The prototypes after refinement with the images x [n_way, d]."""
        return self._refine(self.embed(x))

    def _refine(self, z: torch.Tensor) -> torch.Tensor:
        return refine_prototypes(self.learner, self.support_z, self.support_y, z, self.n_way, self.learner.refine_steps)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        return self.learner.logits_from_embeddings(z, self._refine(z))

    @torch.no_grad()
    def prototypes_for(self, x: torch.Tensor) -> torch.Tensor:
        """The prototypes refined with the images x (what they are classified against)."""
        return self.refined_prototypes(x)

    def export_module(self, group: int = 1) -> nn.Module:
        """The encoder and the support embeddings; each group refines its own prototypes (one image: itself)."""
        learner = self.learner
        one_hot = F.one_hot(self.support_y, self.n_way).to(self.support_z.dtype)
        return _SoftKMeansModule(
            learner.encoder, one_hot.T @ self.support_z, one_hot.sum(0), learner.refine_steps, learner.metric,
            float(learner.log_scale.detach().exp()),
        )  # fmt: skip


class _SoftKMeansModule(nn.Module):
    """`refine_prototypes` per group of images, from the support's class sums and counts held as buffers."""

    def __init__(self, encoder: nn.Module, sums: torch.Tensor, counts: torch.Tensor, steps: int, metric: str, scale):
        super().__init__()
        self.encoder, self.steps, self.metric, self.scale = frozen_copy(encoder), steps, metric, scale
        self.register_buffer("sums", sums.detach().clone())
        self.register_buffer("counts", counts.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.shape[1]
        z = self.encoder(x.flatten(0, 1))
        z = z.reshape(-1, g, z.shape[-1])  # [n, g, d]
        protos = self.sums / self.counts.unsqueeze(-1)
        for _ in range(self.steps):
            m = metric_logits(z, protos, self.metric, self.scale).softmax(-1)  # [n, g, N]
            protos = (self.sums + m.transpose(-1, -2) @ z) / (self.counts + m.sum(-2)).unsqueeze(-1)
        return metric_logits(z, protos, self.metric, self.scale)


@register
class ProtoNetSoftKMeans(ProtoNet):
    name = "protonet-softkmeans"
    title = "Soft k-means"
    trains_live = False

    def __init__(
        self,
        *,
        refine_steps: int = 1,
        metric: str = "euclidean",
        hidden: int = 64,
        model: nn.Module | None = None,
        **base,
    ):
        if refine_steps < 0:
            raise ValueError(f"refine_steps must be >= 0, got {refine_steps}")
        super().__init__(metric=metric, hidden=hidden, model=model, **base)
        self.refine_steps = refine_steps

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> SoftKMeansPredictor:
        n_way = self.check_support(support_x, support_y)
        with torch.no_grad():
            support_x, support_y = support_x.to(self.device), support_y.to(self.device)
            z = self.encoder(support_x)
            protos = prototypes(z, support_y, n_way)
            # The support set alone, before any query is seen: ProtoNet's trace.
            logits = self.logits_from_embeddings(z, protos)
            trace = support_fit(F.cross_entropy(logits, support_y), logits, support_y)
        return SoftKMeansPredictor(self, protos, z, support_y, trace)

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
        protos = refine_prototypes(self, zs, tasks.support_y, zq, n_way, self.refine_steps)
        logits = self.logits_from_embeddings(zq, protos)
        return (logits.argmax(-1) == tasks.query_y).float().mean(-1)

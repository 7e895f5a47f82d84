"""Siamese networks (Koch et al. 2015): learn to verify "same class?", classify by the best match.

A twin Conv-4 encoder embeds both images; the verification head scores the pair as
``sigmoid(w . |z_a - z_b| + b)`` (the paper's weighted L1 distance), which is symmetric
in the two images by construction.

Training. `meta_loss` turns each episode into verification pairs: every unordered pair of
distinct images of the task (support and query alike), labelled same/different class.
An N-way episode has about N times more different pairs than same pairs, so the binary
cross-entropy is balanced by averaging the positives and the negatives separately and
weighting each half by 1/2. The returned accuracy is the N-way query accuracy.

Classification (one-shot as in the paper, extended to K shots): a query's logit for class
c is the highest verification logit over c's support images (max over the class's
examples); ``predict_proba`` is the softmax of these per-class logits (a softmax over the
classes of the best pre-sigmoid match scores). `SiamesePredictor.verification` gives the
raw pair probabilities against every support image.

Initialisation (a deviation from the paper's random head): the head starts as a plain L1
similarity, ``6 - 8 * mean_k |z_a,k - z_b,k|``. With Koch's random init about half the
weights reward a *difference*, and the encoder learns to work around them; on held-out
classes that generalised badly (about 0.45 vs 0.72 5-way 1-shot on the synthetic test
glyphs after 60 short meta-steps). A starting threshold that calls most pairs "same" also
makes the first updates push the embeddings apart rather than collapse them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from playground.algorithms.base import MetaLearner, Predictor, StepRecord, accuracy, register, support_fit
from playground.data.episodes import TaskBatch
from playground.models.exported import Embed, PerImage, batch_independent, best_per_class, frozen_copy

EVAL_PAIR_ELEMENTS = 1 << 25  # elements of the pairwise-difference tensor per step of `episode_accuracies`


def balanced_bce(logits: torch.Tensor, same: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the pairs in ``mask``, same-class and different-class pairs weighted 1/2 each.

    Falls back to the plain mean when one kind is absent (a one-shot support set has no same pair).
    """
    bce = F.binary_cross_entropy_with_logits(logits, same.to(logits.dtype), reduction="none")
    pos, neg = mask & same, mask & ~same
    if not pos.any() or not neg.any():
        return bce[mask].mean()
    return 0.5 * bce[pos].mean() + 0.5 * bce[neg].mean()


def best_match_logits(pair_logits: torch.Tensor, support_y: torch.Tensor, n_way: int) -> torch.Tensor:
    """Max over each class's support images: [..., q, s] -> [..., q, n_way]."""
    member = F.one_hot(support_y, n_way).bool().unsqueeze(-3)  # [..., 1, s, N]
    return pair_logits.unsqueeze(-1).masked_fill(~member, float("-inf")).amax(-2)


class SiamesePredictor(Predictor):
    def __init__(self, learner: SiameseNet, support_z: torch.Tensor, support_y: torch.Tensor, trace: list[StepRecord]):
        self.learner, self.support_z, self.support_y, self.trace = learner, support_z, support_y, trace
        self.n_way = int(support_y.max()) + 1

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner.encoder(x.to(self.support_z.device))

    @torch.no_grad()
    def verification(self, x: torch.Tensor) -> torch.Tensor:
        """Probability that each image shows the class of each support image [n, n_support]."""
        return self.learner.pair_logits(self.embed(x), self.support_z).sigmoid()

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return best_match_logits(self.learner.pair_logits(self.embed(x), self.support_z), self.support_y, self.n_way)

    def export_module(self, group: int = 1) -> nn.Module:
        """The encoder, the verification head and the support embeddings: every image compared alone."""
        member = F.one_hot(self.support_y, self.n_way).bool()
        return PerImage(Embed(self.learner.encoder, _BestMatchHead(self.learner.head, self.support_z, member)))


class _BestMatchHead(nn.Module):
    """Embeddings [m, d] -> each class's best verification logit over its support images [m, n_way]."""

    def __init__(self, head: nn.Module, support_z: torch.Tensor, member: torch.Tensor):
        super().__init__()
        self.head = frozen_copy(head)
        self.register_buffer("support_z", support_z.detach().clone())
        self.register_buffer("member", member.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        pair = self.head((z.unsqueeze(-2) - self.support_z.unsqueeze(0)).abs()).squeeze(-1)
        return best_per_class(pair, self.member, largest=True)


@register
class SiameseNet(MetaLearner):
    name = "siamese"
    title = "Siamese"

    def __init__(self, *, hidden: int = 64, **base):
        super().__init__(**base)
        self.hidden = hidden
        self.encoder = self.make_backbone(hidden, track_running_stats=True)
        self.head = nn.Linear(self.encoder.embedding_dim, 1)
        # Start as a plain L1 similarity, "same" while the mean absolute difference is below 0.75
        # (see the module docstring): logit = 6 - 8 * mean_k |z_a,k - z_b,k|.
        with torch.no_grad():
            self.head.weight.fill_(-8.0 / self.encoder.embedding_dim)
            self.head.bias.fill_(6.0)

    def export_problem(self) -> str:
        if not batch_independent(self.encoder):
            return "its encoder normalises with batch statistics, so an image's embedding depends on its batch"
        return ""

    def pair_logits(self, za: torch.Tensor, zb: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid verification score of every a with every b: [..., m, d] x [..., n, d] -> [..., m, n]."""
        return self.head((za.unsqueeze(-2) - zb.unsqueeze(-3)).abs()).squeeze(-1)

    @torch.no_grad()
    def verify(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Probability that image a[i] and image b[i] show the same class, [n]."""
        za, zb = self.encoder(a.to(self.device)), self.encoder(b.to(self.device))
        return self.head((za - zb).abs()).squeeze(-1).sigmoid()

    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        b, ns = tasks.support_y.shape
        nq = tasks.query_y.shape[1]
        n_way = int(tasks.support_y.max()) + 1
        images = torch.cat([tasks.support_x.flatten(0, 1), tasks.query_x.flatten(0, 1)])
        z = self.encoder(images)
        z = torch.cat([z[: b * ns].view(b, ns, -1), z[b * ns :].view(b, nq, -1)], 1)  # [b, n, d]
        y = torch.cat([tasks.support_y, tasks.query_y], 1)  # [b, n]
        logits = self.pair_logits(z, z)  # [b, n, n]
        same = y.unsqueeze(-1) == y.unsqueeze(-2)
        upper = torch.ones_like(same).triu(1)  # each unordered pair once, no image with itself
        loss = balanced_bce(logits, same, upper)
        query_logits = best_match_logits(logits[:, ns:, :ns], tasks.support_y, n_way)
        return loss, accuracy(query_logits.flatten(0, 1), tasks.query_y.flatten())

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> SiamesePredictor:
        n_way = self.check_support(support_x, support_y)
        with torch.no_grad():
            support_x, support_y = support_x.to(self.device), support_y.to(self.device)
            z = self.encoder(support_x)
            pair = self.pair_logits(z, z)
            # Support accuracy: each support image classified against the support set, itself
            # included (as ProtoNet's trace); the loss: balanced BCE over the distinct pairs.
            logits = best_match_logits(pair, support_y, n_way)
            same = support_y.unsqueeze(-1) == support_y.unsqueeze(-2)
            distinct = ~torch.eye(len(support_y), dtype=torch.bool, device=z.device)
            trace = support_fit(balanced_bce(pair, same, distinct), logits, support_y)
        return SiamesePredictor(self, z, support_y, trace)

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
        # [b, q, s, d] differences: a few tasks at a time bounds the memory.
        step = max(1, EVAL_PAIR_ELEMENTS // (nq * ns * zq.shape[-1]))
        pair = torch.cat([self.pair_logits(zq[i : i + step], zs[i : i + step]) for i in range(0, b, step)])
        logits = best_match_logits(pair, tasks.support_y, n_way)
        return (logits.argmax(-1) == tasks.query_y).float().mean(-1)

"""Matching Networks (Vinyals et al. 2016): attend over the support set, vote with its labels.

A query's class distribution is ``p(c | x) = sum_i a(x, x_i) [y_i = c]``, with attention
``a(x, x_i) = softmax_i(s * cos(f(x), g(x_i)))`` over the support images. Training
minimises the negative log of that probability for the query's true class.

``fce=True`` adds the paper's full-context embeddings:

* ``g``: a bidirectional LSTM reads the support embeddings (in the support set's order);
  ``g(x_i) = g'(x_i) + h_fwd_i + h_bwd_i``.
* ``f``: an attention LSTM runs ``process_steps`` (the paper's K) steps for each query,
  reading the support set with dot-product attention:
  ``r = sum_i softmax_i(h . g(x_i)) g(x_i)``, ``h_hat, c = LSTM([f'(x), r], (h, c))``,
  ``h = h_hat + f'(x)``, starting from ``h = f'(x)``, ``c = 0``. The paper feeds ``[h, r]``
  as the hidden state; feeding ``r`` with the input instead gives the same gate
  pre-activations (a linear map of ``f'(x)``, ``h`` and ``r``) with a ``d``-wide cell.
  Each query is embedded on its own (no dependence on the other queries).

Deviations from the paper: the attention logits are cosine similarities times a learned
inverse temperature ``s`` (initialised to ``scale``; the paper's plain cosine is
``scale=1, learn_scale=False``), because a softmax over values in [-1, 1] cannot become
confident. Batch norm keeps running statistics (as in ProtoNet), so in eval mode an
embedding never depends on the rest of its batch.
"""

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
    register,
    support_fit,
)
from playground.data.episodes import TaskBatch
from playground.models.exported import Embed, PerImage, batch_independent


def class_log_probs(attn_logits: torch.Tensor, support_y: torch.Tensor, n_way: int) -> torch.Tensor:
    """log sum of the attention on each class's support images: [..., q, s] -> [..., q, n_way].

    Computed in log space (logsumexp of the log-softmax), so it is finite and stable even
    when nearly all the attention goes to one image.
    """
    log_attn = attn_logits.log_softmax(-1).unsqueeze(-1)  # [..., q, s, 1]
    member = F.one_hot(support_y, n_way).bool().unsqueeze(-3)  # [..., 1, s, N]
    return log_attn.masked_fill(~member, float("-inf")).logsumexp(-2)


class MatchingPredictor(Predictor):
    """Holds the (context-embedded) support set; queries attend over it."""

    def __init__(self, learner: MatchingNet, support_g: torch.Tensor, support_y: torch.Tensor, trace: list[StepRecord]):
        self.learner, self.support_g, self.support_y, self.trace = learner, support_g, support_y, trace
        self.n_way = int(support_y.max()) + 1

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The query embedding ``f(x)`` that is compared with the support's ``g(x_i)``."""
        x = x.to(self.support_g.device)
        return self.learner.query_embeddings(self.learner.encoder(x), self.support_g)

    @torch.no_grad()
    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """Attention of each image on each support image [n, n_support]; rows sum to 1."""
        return self.learner.attention_logits(self.embed(x), self.support_g).softmax(-1)

    def decisions(self, x: torch.Tensor) -> list[DecisionMatrix]:
        return super().decisions(x) + [
            DecisionMatrix("attention on each support image", self.attention(x), "support", "attention")
        ]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """log p(c | x): the softmax of these is exactly the attention summed per class."""
        return class_log_probs(self.learner.attention_logits(self.embed(x), self.support_g), self.support_y, self.n_way)

    def export_module(self, group: int = 1) -> nn.Module:
        """The encoder and the embedded support set: each image attends over it alone."""
        head = _AttentionHead(self.support_g, self.support_y, self.n_way, float(self.learner.log_scale.detach().exp()))
        return PerImage(Embed(self.learner.encoder, head))


class _AttentionHead(nn.Module):
    """Query embeddings [m, d] -> log of the attention on each class's support images [m, n_way]."""

    def __init__(self, support_g: torch.Tensor, support_y: torch.Tensor, n_way: int, scale: float):
        super().__init__()
        self.register_buffer("support_g", F.normalize(support_g.detach(), dim=-1))
        self.register_buffer("support_y", support_y.detach().clone())
        self.n_way, self.scale = n_way, scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        attn = self.scale * F.normalize(z, dim=-1) @ self.support_g.T
        return class_log_probs(attn, self.support_y, self.n_way)


@register
class MatchingNet(MetaLearner):
    name = "matching"
    title = "Matching Nets"

    def __init__(
        self,
        *,
        fce: bool = False,
        process_steps: int = 5,
        scale: float = 10.0,
        learn_scale: bool = True,
        hidden: int = 64,
        **base,
    ):
        super().__init__(**base)
        if process_steps < 1:
            raise ValueError(f"process_steps must be at least 1, got {process_steps}")
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.fce, self.process_steps, self.scale, self.learn_scale = fce, process_steps, scale, learn_scale
        self.hidden = hidden
        self.encoder = self.make_backbone(hidden, track_running_stats=True)
        self.dim = d = self.encoder.embedding_dim  # hidden on glyphs; larger images keep a feature map
        if fce:
            self.support_lstm = nn.LSTM(d, d, batch_first=True, bidirectional=True)
            self.query_lstm = nn.LSTMCell(2 * d, d)
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale)), requires_grad=learn_scale)

    def export_problem(self) -> str:
        if self.fce:
            return "its full-context embeddings (an LSTM over the support set for each query) are not exported"
        if not batch_independent(self.encoder):
            return "its encoder normalises with batch statistics, so an image's embedding depends on its batch"
        return ""

    # -- the two embedding functions -------------------------------------------------
    def support_embeddings(self, z: torch.Tensor) -> torch.Tensor:
        """g: [..., s, d] -> [..., s, d]; the bidirectional LSTM context when ``fce``."""
        if not self.fce:
            return z
        lead = z.shape[:-2]
        seq = z.reshape(-1, *z.shape[-2:])
        out, _ = self.support_lstm(seq)  # [B, s, 2d]: forward and backward hidden states
        g = seq + out[..., : self.dim] + out[..., self.dim :]
        return g.reshape(*lead, *g.shape[-2:])

    def query_embeddings(self, z: torch.Tensor, support_g: torch.Tensor) -> torch.Tensor:
        """f: [..., q, d] given g(support) [..., s, d] -> [..., q, d]; the attention LSTM when ``fce``."""
        if not self.fce:
            return z
        x = z
        h, c = x, torch.zeros_like(x)
        for _ in range(self.process_steps):
            read = (h @ support_g.transpose(-1, -2)).softmax(-1) @ support_g  # [..., q, d]
            h_hat, c = self.query_lstm(
                torch.cat([x, read], -1).reshape(-1, 2 * self.dim),
                (h.reshape(-1, self.dim), c.reshape(-1, self.dim)),
            )
            h, c = h_hat.view_as(x) + x, c.view_as(x)
        return h

    def attention_logits(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Scaled cosine similarity [..., q, s] between query and support embeddings."""
        return self.log_scale.exp() * F.normalize(f, dim=-1) @ F.normalize(g, dim=-1).transpose(-1, -2)

    def _task_logits(self, zs: torch.Tensor, support_y: torch.Tensor, zq: torch.Tensor, n_way: int) -> torch.Tensor:
        g = self.support_embeddings(zs)
        return class_log_probs(self.attention_logits(self.query_embeddings(zq, g), g), support_y, n_way)

    # -- the MetaLearner interface ----------------------------------------------------
    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        b, ns = tasks.support_y.shape
        nq = tasks.query_y.shape[1]
        n_way = int(tasks.support_y.max()) + 1
        images = torch.cat([tasks.support_x.flatten(0, 1), tasks.query_x.flatten(0, 1)])
        z = self.encoder(images)
        zs, zq = z[: b * ns].view(b, ns, -1), z[b * ns :].view(b, nq, -1)
        logits = self._task_logits(zs, tasks.support_y, zq, n_way).flatten(0, 1)
        y = tasks.query_y.flatten()
        return F.nll_loss(logits, y), accuracy(logits, y)

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> MatchingPredictor:
        n_way = self.check_support(support_x, support_y)
        with torch.no_grad():
            support_x, support_y = support_x.to(self.device), support_y.to(self.device)
            z = self.encoder(support_x)
            g = self.support_embeddings(z)
            # Each support image classified by attention over the whole support set (itself included).
            logits = class_log_probs(self.attention_logits(self.query_embeddings(z, g), g), support_y, n_way)
            trace = support_fit(F.nll_loss(logits, support_y), logits, support_y)
        return MatchingPredictor(self, g, support_y, trace)

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
        logits = self._task_logits(zs, tasks.support_y, zq, n_way)
        return (logits.argmax(-1) == tasks.query_y).float().mean(-1)

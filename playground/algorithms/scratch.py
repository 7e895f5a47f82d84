"""Baseline: a Conv-4 trained from scratch on the support set alone. Nothing is meta-learned.

The lower bound every meta-learner must beat: the same architecture as the others, but
each task starts from one fixed random initialisation (seeded by ``init_seed`` and stored
as the learner's weights, so a checkpoint reproduces it exactly) and is fitted by
``test_inner_steps`` full-batch Adam steps on the support images. `adapt` trains copies of
that initialisation; the stored weights never change, so one model serves every user.

Batch norm. The inner loop normalises every layer with the statistics of the support set
(there is nothing else to normalise with). The predictor then normalises queries with the
support set's statistics under the final weights, i.e. the statistics the classifier was
fitted with, so a query's prediction never depends on which other queries share its batch
and a lone query works.

Defaults (50 Adam steps at 0.003): on Omniglot lake validation 5-way 1-shot the accuracy is
flat from 25 to 100 steps (about 69-73 %; larger rates are worse), so 50 steps is a margin
over the plateau that keeps adaptation cheap. The support loss is near zero well before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from playground.algorithms.base import (
    AdaptOption,
    MetaLearner,
    Predictor,
    StepRecord,
    StepStats,
    accuracy,
    gradient_step_options,
    register,
)
from playground.data.episodes import TaskBatch
from playground.models.exported import FixedStatsConv4, PerImage

Params = dict[str, torch.Tensor]
Stats = list[tuple[torch.Tensor, torch.Tensor]]


class ScratchPredictor(Predictor):
    """The weights trained on one support set, with that support set's batch-norm statistics."""

    def __init__(self, learner: Scratch, weights: Params, stats: Stats, n_way: int, trace: list[StepRecord]):
        self.learner, self.weights, self.stats, self.n_way, self.trace = learner, weights, stats, n_way, trace

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner.features(self.weights, x.to(self.weights["head.weight"].device), self.stats)[0]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner.head(self.weights, self.embed(x))

    def export_module(self, group: int = 1) -> nn.Module:
        """The trained weights with the support set's batch-norm statistics: each image alone."""
        return PerImage(FixedStatsConv4(self.weights, self.stats, self.learner.body.features[0][1].eps))


@register
class Scratch(MetaLearner):
    name = "scratch"
    title = "Scratch"
    not_exportable = ""

    def __init__(
        self,
        *,
        hidden: int = 64,
        test_inner_steps: int = 50,
        inner_lr: float = 0.003,
        init_seed: int = 0,
        **base,
    ):
        super().__init__(**base)
        if test_inner_steps < 0:
            raise ValueError(f"test_inner_steps must be >= 0 (got {test_inner_steps})")
        if not 0 < inner_lr < float("inf"):
            raise ValueError(f"inner_lr must be a positive finite number (got {inner_lr})")
        self.hidden, self.init_seed = hidden, init_seed
        self.test_inner_steps, self.inner_lr = test_inner_steps, inner_lr
        # The seeded initialisation, drawn without disturbing the caller's random stream. No
        # running statistics (no buffers): batch statistics are computed explicitly in `features`.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            self.body = self.make_backbone(hidden, track_running_stats=False)
        # Frozen: the initialisation is data, not something meta-training may move.
        self.body.requires_grad_(False)

    # -- the functional network ------------------------------------------------------------
    def initial_weights(self, n_way: int) -> Params:
        """Fresh trainable copies of the stored initialisation, plus a zero ``n_way``-class head.

        A zero head treats every class alike, so the result does not depend on how the task
        numbers its classes (random rows would favour some classes at random).
        """
        device = self.device
        weights = {f"body.{k}": v.detach().clone() for k, v in self.body.named_parameters()}
        weights["head.weight"] = torch.zeros(n_way, self.body.embedding_dim, device=device)
        weights["head.bias"] = torch.zeros(n_way, device=device)
        return {k: v.requires_grad_() for k, v in weights.items()}

    def features(self, weights: Params, x: torch.Tensor, stats: Stats | None = None) -> tuple[torch.Tensor, Stats]:
        """The Conv-4 body under ``weights``; batch norm with ``stats`` or, if None, the batch's own.

        Returns the embedding and the statistics used (per block: mean, biased variance, as
        batch norm normalises with in training).
        """
        used: Stats = []
        h = x
        for i, (conv, bn, relu, pool) in enumerate(self.body.features):
            prefix = f"body.features.{i}"
            h = F.conv2d(h, weights[f"{prefix}.0.weight"], weights[f"{prefix}.0.bias"], conv.stride, conv.padding)
            gamma, beta = weights[f"{prefix}.1.weight"], weights[f"{prefix}.1.bias"]
            if stats is None:
                with torch.no_grad():
                    used.append((h.mean((0, 2, 3)), h.var((0, 2, 3), unbiased=False)))
                h = F.batch_norm(h, None, None, gamma, beta, training=True, eps=bn.eps)
            else:
                used.append(stats[i])
                h = F.batch_norm(h, *stats[i], gamma, beta, training=False, eps=bn.eps)
            h = pool(relu(h))
        return h.flatten(1), used

    @staticmethod
    def head(weights: Params, z: torch.Tensor) -> torch.Tensor:
        return z @ weights["head.weight"].T + weights["head.bias"]

    # -- adaptation --------------------------------------------------------------------------
    def adapt_options(self) -> list[AdaptOption]:
        """Adam steps and learning rate of the from-scratch training."""
        return gradient_step_options(
            self.test_inner_steps,
            max(200, 2 * self.test_inner_steps),
            self.inner_lr,
            ("training steps", "Adam steps on the support set, from the random initialisation"),
            ("learning rate", "Adam's step size"),
        )

    def fit(
        self, support_x: torch.Tensor, support_y: torch.Tensor, n_way: int, steps: int, lr: float
    ) -> tuple[Params, Stats, list[StepRecord]]:
        """Train copies of the initialisation on the support set; returns weights, statistics, trace."""
        weights = self.initial_weights(n_way)
        optimizer = torch.optim.Adam(weights.values(), lr=lr)
        trace: list[StepRecord] = []
        with torch.enable_grad():
            for step in range(steps + 1):
                z, stats = self.features(weights, support_x)
                logits = self.head(weights, z)
                loss = F.cross_entropy(logits, support_y)
                trace.append(StepRecord(step, float(loss.detach()), float(accuracy(logits, support_y))))
                if step == steps:
                    break  # the last pass only measures the final weights (and gives their statistics)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return {k: v.detach() for k, v in weights.items()}, stats, trace

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> ScratchPredictor:
        n_way = self.check_support(support_x, support_y)
        steps, lr = self.inner_settings(n_steps, inner_lr)
        support_x, support_y = support_x.to(self.device), support_y.to(self.device)
        weights, stats, trace = self.fit(support_x, support_y, n_way, steps, lr)
        return ScratchPredictor(self, weights, stats, n_way, trace)

    # -- meta-training: nothing to learn --------------------------------------------------------
    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("scratch has nothing to meta-train")

    def meta_train_step(self, tasks: TaskBatch, grad_hook=None) -> StepStats:
        """Nothing to learn: reports the query accuracy of the batch, so training logs stay comparable."""
        return StepStats(0.0, float(self.episode_accuracies(tasks).mean()))

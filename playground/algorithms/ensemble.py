"""Trained learners combined at test time: their log-probabilities averaged, over shifted views too.

An ensemble is assembled from trained checkpoints (``python -m playground ensemble A.pt [B.pt ...]
--view-shift R --out E.pt``), not meta-trained. ``members`` lists each member's algorithm and
config; their weights are the ensemble's state dict, so the result is one ordinary checkpoint
that every page, CLI command and benchmark takes unchanged.

With ``view_shift`` R > 0, each member adapts to the support set with every support image also
shifted by each of the (2R+1)^2 offsets of `playground.data.augment.view_offsets` (more shots of the
same classes, nothing else), and a query's log-probabilities are averaged over the same shifted
copies of it. With ``step_views`` False, members that adapt by inner steps (MAML and its kin) adapt
to the plain support instead, a ninth of their cost at R = 1; their queries are still viewed.
The views add nothing transductive: a member that decides each query alone (ProtoNet, unlike
soft k-means) still does, from that query's own shifted copies.
For one Euclidean ProtoNet this is exactly classifying the query's mean embedding over the views
against the prototypes of the support's views (the averaged squared distances differ from the
distances of the averages by a per-query constant), so that member's embedding and prototypes
remain the ones the decision is made in.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from playground.algorithms.base import (
    AdaptOption,
    MetaLearner,
    Predictor,
    StepRecord,
    register,
    support_fit,
)
from playground.data.augment import shift_views, view_offsets
from playground.data.episodes import TaskBatch
from playground.models.exported import ShiftViews

MAX_VIEW_SHIFT = 3  # 49 views: past that each prediction costs too much for an interactive page


def _members_from_specs(specs: list[dict[str, Any]]) -> nn.ModuleList:
    from playground.algorithms import create_learner  # the registry imports this module

    learners = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("algorithm"), str):
            raise ValueError(f"ensemble member {i} must be {{'algorithm': name, 'config': {{...}}}}, got {spec!r}")
        if spec["algorithm"] == Ensemble.name:
            raise ValueError(f"ensemble member {i} is itself an ensemble; list its members instead")
        learners.append(create_learner(spec["algorithm"], **dict(spec.get("config") or {})))
    return nn.ModuleList(learners)


class EnsemblePredictor(Predictor):
    def __init__(
        self, learner: Ensemble, predictors: list[Predictor], support_x: torch.Tensor, support_y: torch.Tensor
    ):
        self.learner, self.predictors = learner, predictors
        self.n_way = predictors[0].n_way
        self.support_x, self.support_y = support_x, support_y
        self._trace: list[StepRecord] | None = None

    @property
    def trace(self) -> list[StepRecord]:
        """The ensemble's loss and accuracy on its support, computed when first asked for.

        It costs a prediction of every view of the support by every member (at 20-way 5-shot as
        much as the three members' adaptations), which an evaluation, never asking, is spared.
        """
        if self._trace is None:
            logits = self.logits(self.support_x)
            loss = torch.nn.functional.cross_entropy(logits, self.support_y)
            self._trace = support_fit(loss, logits, self.support_y)
        return self._trace

    def views(self, x: torch.Tensor) -> list[torch.Tensor]:
        return shift_views(x, self.learner.view_shift)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Mean log-probability over members and over the shifted views of x [n, n_way]."""
        views = torch.cat(self.views(x))  # one pass over every view: the convolutions batch well
        shape = (-1, len(x), self.n_way)
        per_member = [p.logits(views).log_softmax(-1).view(shape).mean(0) for p in self.predictors]
        return torch.stack(per_member).mean(0)

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor | None:
        """A lone member's embedding, averaged over the views; None for several members (no shared space)."""
        if len(self.predictors) != 1:
            return None
        embeddings = self.predictors[0].embed(torch.cat(self.views(x)))
        return None if embeddings is None else embeddings.view(-1, len(x), embeddings.shape[-1]).mean(0)

    def prototypes_for(self, x: torch.Tensor) -> torch.Tensor | None:
        return self.predictors[0].prototypes_for(x) if len(self.predictors) == 1 else None

    def export_module(self, group: int = 1) -> nn.Module:
        """Every member's export, each fed a group's shifted views in one call as `logits` feeds them."""
        views = len(view_offsets(self.learner.view_shift))
        members = [p.export_module(group * views) for p in self.predictors]
        return _EnsembleModule(ShiftViews(view_offsets(self.learner.view_shift)), members, views)


class _EnsembleModule(nn.Module):
    """Image groups [n, g, ...] -> the members' log-probabilities [n, g, n_way], averaged over views and members."""

    def __init__(self, views: nn.Module, members: list[nn.Module], n_views: int):
        super().__init__()
        self.views, self.members, self.n_views = views, nn.ModuleList(members), n_views

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.shape[1]
        seen = self.views(x)  # [n, views * g, 1, H, W], view-major as `EnsemblePredictor.views`
        per_member = []
        for member in self.members:
            out = member(seen)
            per_member.append(out.log_softmax(-1).reshape(-1, self.n_views, g, out.shape[-1]).mean(1))
        return torch.stack(per_member).mean(0)


@register
class Ensemble(MetaLearner):
    name = "ensemble"
    title = "Ensemble"
    not_distributable = "an ensemble is assembled from trained checkpoints, not meta-trained"
    not_trainable = (
        "an ensemble is assembled from trained checkpoints, not meta-trained: train its members, "
        "then run `python -m playground ensemble MEMBER.pt [...] --out ENSEMBLE.pt`"
    )

    def __init__(
        self, *, members: list[dict[str, Any]] | None = None, view_shift: int = 0, step_views: bool = True, **base
    ):
        super().__init__(**base)
        # A fresh ensemble of one ProtoNet is the default, so the registry can build it like any other.
        specs = list(members or [{"algorithm": "protonet", "config": {}}])
        if not 0 <= int(view_shift) <= MAX_VIEW_SHIFT:
            raise ValueError(f"view_shift must be between 0 and {MAX_VIEW_SHIFT} pixels (got {view_shift})")
        self.view_shift = int(view_shift)
        # False: members with inner steps adapt to the plain support (their queries are still viewed).
        # On Lake-style validation runs MAML tied without the support's views at a ninth of the cost.
        self.step_views = bool(step_views)
        self.learners = _members_from_specs(specs)
        self.members = [dict(m) for m in specs]

    def export_problem(self) -> str:
        """Exportable when every member is; otherwise which member is not, and why."""
        problems = [
            f"member {i + 1} ({learner.title or learner.name}) cannot be: {learner.export_problem()}"
            for i, learner in enumerate(self.learners)
            if learner.export_problem()
        ]
        return "; ".join(problems)

    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        raise RuntimeError(self.not_trainable)

    def meta_train_step(self, tasks: TaskBatch, grad_hook=None):
        raise RuntimeError(self.not_trainable)

    def adapt_options(self) -> list[AdaptOption]:
        """Each test-time setting of the members (the first member's range where several share one)."""
        options: dict[str, AdaptOption] = {}
        for learner in self.learners:
            for option in learner.adapt_options():
                options.setdefault(option.name, option)
        return list(options.values())

    def episode_work(self, n_way: int, k_shot: int, n_query: int, n_steps: int | None = None) -> int:
        """Every member's work on the shifted views of the support and of the queries (the plain support
        for members with inner steps when ``step_views`` is off), as `adapt` and the predictor run them."""
        views = (2 * self.view_shift + 1) ** 2
        total = 0
        for learner in self.learners:
            plain = not self.step_views and learner.adapts_with("n_steps")
            total += learner.episode_work(n_way, k_shot * (1 if plain else views), n_query * views, n_steps)
        return total

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> EnsemblePredictor:
        self.check_support(support_x, support_y)
        support_x, support_y = support_x.to(self.device), support_y.to(self.device)
        views = shift_views(support_x, self.view_shift)
        shots_x, shots_y = torch.cat(views), support_y.repeat(len(views))
        predictors = []
        for learner in self.learners:
            plain = not self.step_views and learner.adapts_with("n_steps")
            x, y = (support_x, support_y) if plain else (shots_x, shots_y)
            # Learners without an inner loop ignore n_steps and inner_lr, as `MetaLearner.adapt` says.
            predictors.append(learner.adapt(x, y, n_steps=n_steps, inner_lr=inner_lr))
        return EnsemblePredictor(self, predictors, support_x, support_y)

"""Why a model decides as it does: its embedding of a task in 2-D, its adaptation step by step,
the matrices it decides from, and its confusion matrix. What the explorer page draws."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from playground.algorithms import DecisionMatrix, MetaLearner, Predictor
from playground.algorithms.protonet import prototypes
from playground.interactive.imaging import from_tensor
from playground.interactive.inference import adapt_kwargs
from playground.interactive.projection import project_2d

KINDS = ("support", "query", "distractor", "prototype")


@dataclass
class EmbeddingView:
    """A task's images (and its prototypes) in one model's embedding, projected to 2-D.

    Points are in the order support, query, distractor, prototype; ``kind`` says which is which.
    """

    coords: np.ndarray  # [n_points, 2]
    kind: list[str]
    label: list[int | None]  # the class (support, prototypes, labelled queries); None where unknown
    predicted: list[int | None]  # the model's class for each query; None for the rest
    nearest_prototype: list[int | None]  # for each query, its nearest prototype in the embedding
    images: list[np.ndarray | None]  # 28x28 uint8, ink = 255 (None for prototypes)
    class_names: list[str]
    note: str  # how the 2-D picture was made
    space: str  # what the embedding is, in words
    dim: int

    def indices(self, kind: str) -> list[int]:
        return [i for i, k in enumerate(self.kind) if k == kind]

    @property
    def misclassified(self) -> list[int]:
        """Indices of labelled queries the model got wrong."""
        return [
            i
            for i in self.indices("query")
            if self.label[i] is not None and self.predicted[i] is not None and self.label[i] != self.predicted[i]
        ]


def _embed(predictor: Predictor, x: torch.Tensor, who: str) -> torch.Tensor:
    z = predictor.embed(x)
    if z is None:
        raise ValueError(f"{who} has no embedding to show")
    return z.detach().float().flatten(1).cpu()


def embedding_view(
    learner: MetaLearner,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    class_names: list[str],
    query_labels: list[int | None] | None = None,
    distractor_x: torch.Tensor | None = None,
    method: str = "tsne",
    settings: Mapping[str, float] | None = None,
    seed: int = 0,
) -> EmbeddingView:
    """Adapt ``learner`` to the support set and project support, queries, distractors and prototypes.

    Each group is embedded on its own, as the model sees it (support images while adapting,
    queries when predicting): with transductive batch norm an embedding depends on its batch.
    Prototypes are the algorithm's own where it has them, else the class means of the support.
    """
    device = learner.device
    predictor = learner.adapt(support_x.to(device), support_y.to(device), **adapt_kwargs(learner, settings or {}))
    n_way = predictor.n_way
    query_labels = list(query_labels) if query_labels is not None else [None] * len(query_x)
    with torch.no_grad():
        zs = _embed(predictor, support_x.to(device), learner.name)
        zq = _embed(predictor, query_x.to(device), learner.name) if len(query_x) else zs[:0]
        zd = _embed(predictor, distractor_x.to(device), learner.name) if distractor_x is not None else zs[:0]
        protos = predictor.prototypes_for(query_x.to(device)) if len(query_x) else None
        if protos is not None:
            protos, space = protos.detach().float().cpu(), "the embedding its prototypes live in"
        else:
            protos, space = (
                prototypes(zs, support_y.cpu(), n_way),
                "its embedding (prototypes = class means of the support)",
            )
        predicted = predictor.predict(query_x.to(device)).cpu().tolist() if len(query_x) else []
    nearest = torch.cdist(zq, protos).argmin(-1).tolist() if len(zq) else []
    points = torch.cat([zs, zq, zd, protos]).numpy()
    projection = project_2d(points, method, seed=seed)
    ns, nq, nd = len(zs), len(zq), len(zd)
    return EmbeddingView(
        coords=projection.coords,
        kind=["support"] * ns + ["query"] * nq + ["distractor"] * nd + ["prototype"] * n_way,
        label=support_y.cpu().tolist() + query_labels + [None] * nd + list(range(n_way)),
        predicted=[None] * ns + predicted + [None] * (nd + n_way),
        nearest_prototype=[None] * ns + nearest + [None] * (nd + n_way),
        images=from_tensor(support_x)
        + from_tensor(query_x)
        + (from_tensor(distractor_x) if nd else [])
        + [None] * n_way,
        class_names=list(class_names),
        note=projection.note,
        space=f"{learner.name}: {space}, {points.shape[1]}-d",
        dim=points.shape[1],
    )


def steps_option(learner: MetaLearner) -> int | None:
    """The largest number of inner steps a person may choose for ``learner``; None without an inner loop."""
    return next((int(o.high) for o in learner.adapt_options() if o.name == "n_steps"), None)


def steps_to_watch(learner: MetaLearner, support_y: torch.Tensor) -> int:
    """The inner steps `adapt` takes on this task when no one sets them (its card's for the task size, else
    the learner's own): the step-by-step view then ends where Adapt and predict does."""
    n_way = int(support_y.max()) + 1
    own = next(int(o.default) for o in learner.adapt_options() if o.name == "n_steps")
    return int(learner.settings_for(n_way, round(len(support_y) / n_way)).get("n_steps", own))


@dataclass
class AdaptationSteps:
    """A gradient-based learner's view of a task after each inner step 0..S.

    Points are in the order support, query; ``kind`` says which is which.
    """

    steps: list[int]
    coords: np.ndarray  # [S + 1, n_support + n_query, 2], one projection shared by every step
    query_proba: np.ndarray  # [S + 1, n_query, n_way]
    support_proba: np.ndarray  # [S + 1, n_support, n_way]: what the model says about its own examples
    support_accuracy: list[float]
    kind: list[str]  # "support" / "query" per point
    label: list[int | None]
    images: list[np.ndarray]
    note: str
    trace_loss: list[float] = field(default_factory=list)

    def proba(self, step: int) -> np.ndarray:
        """Every point's class probabilities after ``step`` inner steps: [n_support + n_query, n_way]."""
        return np.concatenate([self.support_proba[step], self.query_proba[step]])

    def predicted(self, step: int, tie: float = 0.01) -> list[int | None]:
        """Each point's class after ``step`` inner steps; None where its two likeliest classes are
        within ``tie`` of each other. Before adapting, a MAML head gives every class the same
        probability, and which class argmax picks among equals is an accident of order, not a
        prediction worth colouring."""
        proba = self.proba(step)
        if proba.shape[-1] < 2:
            return [int(p.argmax()) for p in proba]
        top2 = np.sort(proba, axis=-1)[:, -2:]
        return [None if b - a < tie else int(p.argmax()) for p, (a, b) in zip(proba, top2)]

    def wrong(self, step: int) -> list[int]:
        """Indices of the labelled points not (yet) predicted as their class after ``step`` inner steps."""
        return [i for i, (y, p) in enumerate(zip(self.label, self.predicted(step))) if y is not None and p != y]

    def motion(self) -> float:
        """The farthest any point moves from where it starts, as a fraction of the plot's larger side.

        Near 0 when adapting changes how the last layer reads the features, not the features.
        """
        span = float(np.ptp(self.coords.reshape(-1, 2), axis=0).max()) if self.coords.size else 0.0
        if span == 0:
            return 0.0
        return float(np.linalg.norm(self.coords - self.coords[:1], axis=-1).max() / span)


def adaptation_steps(
    learner: MetaLearner,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    max_steps: int,
    query_labels: list[int | None] | None = None,
    inner_lr: float | None = None,
    method: str = "pca",
    seed: int = 0,
) -> AdaptationSteps:
    """Adapt with 0, 1, ..., ``max_steps`` inner steps: features and query probabilities after each.

    One projection is fitted to the points of every step together, so the frames share their
    axes and the motion between them is the model's, not the projection's.
    """
    high = steps_option(learner)
    if high is None:
        raise ValueError(f"{learner.name} has no inner loop: it does not adapt step by step")
    if not 0 <= max_steps <= high:
        raise ValueError(f"inner steps must be between 0 and {high} (got {max_steps})")
    device = learner.device
    sx, sy, qx = support_x.to(device), support_y.to(device), query_x.to(device)
    checked = adapt_kwargs(learner, {"n_steps": max_steps, "inner_lr": inner_lr})
    # An ensemble steps through its gradient members but has no one feature space to draw: say so
    # after one cheap 0-step adaptation, not after adapting max_steps + 1 times.
    with torch.no_grad():
        if learner.adapt(sx, sy, n_steps=0).embed(sx[:1]) is None:
            raise ValueError(f"{learner.name} has no one feature space to show step by step")
    # `adapt_steps` is exactly what a person sees after choosing k steps on the predict page, for
    # every k at once (gradient-based learners run their inner loop once for all of them).
    predictors = learner.adapt_steps(sx, sy, max_steps, checked.get("inner_lr"))
    features, probas, support_probas, support_acc, losses = [], [], [], [], []
    with torch.no_grad():
        for predictor in predictors:
            z = [_embed(predictor, sx, learner.name)] + ([_embed(predictor, qx, learner.name)] if len(qx) else [])
            features.append(torch.cat(z))
            probas.append(predictor.predict_proba(qx).cpu().numpy() if len(qx) else np.zeros((0, predictor.n_way)))
            support_probas.append(predictor.predict_proba(sx).cpu().numpy())
            support_acc.append(predictor.trace[-1].accuracy)
            losses.append(predictor.trace[-1].loss)
    stacked = torch.stack(features)  # [S + 1, n, d]
    projection = project_2d(stacked.flatten(0, 1).numpy(), method, seed=seed)
    n = stacked.shape[1]
    labels = list(query_labels) if query_labels is not None else [None] * len(qx)
    return AdaptationSteps(
        steps=list(range(max_steps + 1)),
        coords=projection.coords.reshape(max_steps + 1, n, 2),
        query_proba=np.stack(probas),
        support_proba=np.stack(support_probas),
        support_accuracy=support_acc,
        kind=["support"] * len(sx) + ["query"] * len(qx),
        label=sy.cpu().tolist() + labels,
        images=from_tensor(support_x) + from_tensor(query_x),
        note=projection.note + " (one projection for every step)",
        trace_loss=losses,
    )


def decision_matrices(
    learner: MetaLearner,
    support_x: torch.Tensor,
    support_y: torch.Tensor,
    query_x: torch.Tensor,
    settings: Mapping[str, float] | None = None,
) -> list[DecisionMatrix]:
    """Adapt and return what each query's decision is made from (see `Predictor.decisions`), on the CPU."""
    device = learner.device
    predictor = learner.adapt(support_x.to(device), support_y.to(device), **adapt_kwargs(learner, settings or {}))
    return [
        DecisionMatrix(m.title, m.values.detach().float().cpu(), m.columns, m.unit)
        for m in predictor.decisions(query_x.to(device))
    ]


def confusion_matrix(true: list[int | None], predicted: list[int], n_way: int) -> np.ndarray:
    """Counts [n_way, n_way]: row = true class, column = predicted; unlabelled queries are left out."""
    if len(true) != len(predicted):
        raise ValueError(f"{len(true)} true labels for {len(predicted)} predictions")
    counts = np.zeros((n_way, n_way), dtype=int)
    for t, p in zip(true, predicted):
        if t is None:
            continue
        if not (0 <= t < n_way and 0 <= p < n_way):
            raise ValueError(f"class index out of range 0..{n_way - 1}: true {t}, predicted {p}")
        counts[t, p] += 1
    return counts

"""Relation Networks (Sung et al. 2018): a learned module scores how well a query matches a class.

Encoder. The paper's: four [3x3 conv, batch norm, ReLU] blocks, only the first two with
2x2 max-pooling, so it keeps a spatial feature map. With our padded convolutions a 28x28
image gives a ``hidden`` x 7 x 7 map; ``unpadded_blocks=2`` leaves the first two convolutions
unpadded, as the paper's code does, for a 5 x 5 map (28 -> 26 -> 13 -> 11 -> 5).

Relation module. Each class is represented by the mean of its support feature maps (the
paper sums them for K > 1; the mean keeps the scale independent of the number of shots,
so one model serves any K and classes with different numbers of examples). The class map
is concatenated with the query map along the channels and scored by two [conv, batch
norm, ReLU, max-pool] blocks (7 -> 3 -> 1) and two linear layers (``hidden`` ->
``relation_hidden`` -> 1) ending in a sigmoid: the relation score in (0, 1). Training
regresses the scores onto the one-hot labels with a mean squared error, as in the paper.

Probabilities. The relation scores are not a distribution (each is an independent
sigmoid). `Predictor.logits` returns ``log(score)`` (computed as ``logsigmoid`` of the
pre-activation), so ``predict_proba`` = softmax(logits) is the *normalised* scores
``r_c / sum_c' r_c'``: same ranking as the scores, no extra temperature to tune.
`RelationPredictor.relation_scores` gives the raw scores.

Batch norm keeps running statistics everywhere (as in ProtoNet), so in eval mode a score
never depends on the other images of the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from playground.algorithms.base import MetaLearner, Predictor, StepRecord, accuracy, register, support_fit
from playground.algorithms.protonet import prototypes
from playground.data.episodes import TaskBatch
from playground.models.exported import PerImage, batch_independent, frozen_copy

EVAL_PAIRS = 8192  # (query, class) pairs per relation-module call in `episode_accuracies`


def block(in_channels: int, out_channels: int, pool: bool, padding: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=padding),
        nn.BatchNorm2d(out_channels, track_running_stats=True),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class RelationPredictor(Predictor):
    def __init__(self, learner: RelationNet, class_maps: torch.Tensor, trace: list[StepRecord]):
        self.learner, self.class_maps, self.trace = learner, class_maps, trace
        self.n_way = class_maps.shape[0]

    @torch.no_grad()
    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner.encoder(x.to(self.class_maps.device))

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened feature map that the relation module compares with each class's map."""
        return self.feature_maps(x).flatten(1)

    @torch.no_grad()
    def relation_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid relation scores [n, n_way]."""
        return self.learner.relation_logits(self.feature_maps(x), self.class_maps)

    @torch.no_grad()
    def relation_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's relation scores in (0, 1), [n, n_way]; not normalised."""
        return self.relation_logits(x).sigmoid()

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """log relation score: its softmax is the scores normalised to sum to 1."""
        return F.logsigmoid(self.relation_logits(x))

    def export_module(self, group: int = 1) -> nn.Module:
        """The encoder, the relation module and each class's mean support map: every image scored alone."""
        return PerImage(_RelationModule(self.learner.encoder, self.learner.relation, self.class_maps))


class _RelationModule(nn.Module):
    """Images [m, 1, 28, 28] -> log relation score with each class's map [m, n_way]."""

    def __init__(self, encoder: nn.Module, relation: nn.Module, class_maps: torch.Tensor):
        super().__init__()
        self.encoder, self.relation = frozen_copy(encoder), frozen_copy(relation)
        self.register_buffer("class_maps", class_maps.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.encoder(x)  # [m, C, H, W]
        n = self.class_maps.shape[0]
        pairs = torch.cat(
            [
                self.class_maps.unsqueeze(0).expand(maps.shape[0], -1, -1, -1, -1),
                maps.unsqueeze(1).expand(-1, n, -1, -1, -1),
            ],
            dim=2,
        )
        return F.logsigmoid(self.relation(pairs.flatten(0, 1)).reshape(-1, n))


@register
class RelationNet(MetaLearner):
    name = "relation"
    title = "Relation Net"
    glyphs_only = "its relation module is sized for the feature maps of 1x28x28 glyphs"

    def __init__(self, *, hidden: int = 64, relation_hidden: int = 8, unpadded_blocks: int = 0, **base):
        super().__init__(**base)
        if unpadded_blocks not in (0, 1, 2):
            raise ValueError(f"unpadded_blocks must be 0, 1 or 2 (the pooling blocks), got {unpadded_blocks!r}")
        self.hidden, self.relation_hidden, self.unpadded_blocks = hidden, relation_hidden, unpadded_blocks
        self.encoder = nn.Sequential(
            block(1, hidden, pool=True, padding=int(unpadded_blocks < 1)),  # 28 -> 14 (unpadded: 26 -> 13)
            block(hidden, hidden, pool=True, padding=int(unpadded_blocks < 2)),  # 14 -> 7 (unpadded: 11 -> 5)
            block(hidden, hidden, pool=False),
            block(hidden, hidden, pool=False),
        )
        self.relation = nn.Sequential(
            block(2 * hidden, hidden, pool=True),  # 7 -> 3 (5 -> 2)
            block(hidden, hidden, pool=True),  # 3 -> 1 (2 -> 1)
            nn.Flatten(),
            nn.Linear(hidden, relation_hidden),
            nn.ReLU(),
            nn.Linear(relation_hidden, 1),
        )

    def export_problem(self) -> str:
        if not batch_independent(self.encoder) or not batch_independent(self.relation):
            return "its encoder normalises with batch statistics, so an image's embedding depends on its batch"
        return ""

    def class_maps(self, support_maps: torch.Tensor, support_y: torch.Tensor, n_way: int) -> torch.Tensor:
        """Mean support feature map per class: [..., s, C, H, W] -> [..., n_way, C, H, W]."""
        shape = support_maps.shape[-3:]
        return prototypes(support_maps.flatten(-3), support_y, n_way).unflatten(-1, shape)

    def relation_logits(self, query_maps: torch.Tensor, class_maps: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid relation of each query with each class: [..., q, C, H, W], [..., N, C, H, W] -> [..., q, N]."""
        q, n = query_maps.shape[-4], class_maps.shape[-4]
        lead = torch.broadcast_shapes(query_maps.shape[:-4], class_maps.shape[:-4])
        pairs = torch.cat(
            [
                class_maps.unsqueeze(-5).expand(*lead, q, n, *class_maps.shape[-3:]),
                query_maps.unsqueeze(-4).expand(*lead, q, n, *query_maps.shape[-3:]),
            ],
            dim=-3,
        )
        return self.relation(pairs.flatten(0, -4)).view(*lead, q, n)

    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        b, ns = tasks.support_y.shape
        nq = tasks.query_y.shape[1]
        n_way = int(tasks.support_y.max()) + 1
        images = torch.cat([tasks.support_x.flatten(0, 1), tasks.query_x.flatten(0, 1)])
        maps = self.encoder(images)
        ms, mq = maps[: b * ns].unflatten(0, (b, ns)), maps[b * ns :].unflatten(0, (b, nq))
        logits = self.relation_logits(mq, self.class_maps(ms, tasks.support_y, n_way))  # [b, q, N]
        target = F.one_hot(tasks.query_y, n_way).to(logits.dtype)
        loss = F.mse_loss(logits.sigmoid(), target)
        return loss, accuracy(logits.flatten(0, 1), tasks.query_y.flatten())

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> RelationPredictor:
        n_way = self.check_support(support_x, support_y)
        with torch.no_grad():
            support_x, support_y = support_x.to(self.device), support_y.to(self.device)
            maps = self.encoder(support_x)
            cmaps = self.class_maps(maps, support_y, n_way)
            logits = self.relation_logits(maps, cmaps)
            target = F.one_hot(support_y, n_way).to(logits.dtype)
            # The support loss is the training objective: MSE of the relation scores to one-hot.
            trace = support_fit(F.mse_loss(logits.sigmoid(), target), logits, support_y)
        return RelationPredictor(self, cmaps, trace)

    @torch.no_grad()
    def episode_work(self, n_way: int, k_shot: int, n_query: int, n_steps: int | None = None) -> int:
        """Every image through the encoder once, plus every (query, class) pair through the relation module,
        each pair counted as one image pass too (the module is smaller than the encoder: on the safe side)."""
        return n_way * (k_shot + n_query) + n_way * n_query * n_way

    def episode_accuracies(
        self, tasks: TaskBatch, n_steps: int | None = None, inner_lr: float | None = None
    ) -> torch.Tensor:
        tasks = tasks.to(self.device)
        b, ns = tasks.support_y.shape
        nq = tasks.query_y.shape[1]
        n_way = int(tasks.support_y.max()) + 1
        ms = self.encoder(tasks.support_x.flatten(0, 1)).unflatten(0, (b, ns))
        mq = self.encoder(tasks.query_x.flatten(0, 1)).unflatten(0, (b, nq))
        cmaps = self.class_maps(ms, tasks.support_y, n_way)
        # The relation module sees every (query, class) pair: a few tasks at a time bounds the memory.
        step = max(1, EVAL_PAIRS // (nq * n_way))
        logits = torch.cat([self.relation_logits(mq[i : i + step], cmaps[i : i + step]) for i in range(0, b, step)])
        return (logits.argmax(-1) == tasks.query_y).float().mean(-1)

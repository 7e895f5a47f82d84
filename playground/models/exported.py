"""Plain torch modules that an adapted predictor is exported as (`Predictor.export_module`).

Each maps a batch of image groups [n, g, 1, 28, 28] to class scores [n, g, n_way] with the task's
adapted tensors held as buffers, so it runs without the learner (and exports to ONNX). A group is
what the app's predictor classifies in one call: ``g = 1`` is one image alone; an ensemble passes
the shifted views of one image as a group. Only ops that ONNX's opset 17 has are used: no
``cdist`` (squared distances are summed from differences, which is also the most exact form).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def frozen_copy(module: nn.Module) -> nn.Module:
    """A detached copy of ``module`` in eval mode: the export never touches the shared model."""
    out = copy.deepcopy(module).eval()
    out.requires_grad_(False)
    return out


def squared_distances(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """[..., m, d] x [..., k, d] -> [..., m, k] squared Euclidean distances (from differences, exact)."""
    return (q.unsqueeze(-2) - p.unsqueeze(-3)).pow(2).sum(-1)


def cosine(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """[..., m, d] x [..., k, d] -> [..., m, k] cosine similarities."""
    return F.normalize(q, dim=-1) @ F.normalize(p, dim=-1).transpose(-1, -2)


def metric_logits(q: torch.Tensor, p: torch.Tensor, metric: str, scale: float) -> torch.Tensor:
    """ProtoNet's logits: negative squared distance, or ``scale`` times the cosine similarity."""
    return -squared_distances(q, p) if metric == "euclidean" else scale * cosine(q, p)


def best_per_class(scores: torch.Tensor, member: torch.Tensor, largest: bool) -> torch.Tensor:
    """[..., s] scores per support image -> [..., n_way]: each class's best (``member`` [s, n_way] bool)."""
    fill = float("-inf") if largest else float("inf")
    masked = scores.unsqueeze(-1).masked_fill(~member, fill)
    return masked.amax(-2) if largest else masked.amin(-2)


class PerImage(nn.Module):
    """A module of single images [m, 1, 28, 28] -> [m, ...] applied to groups [n, g, ...]: images are independent."""

    def __init__(self, per_image: nn.Module):
        super().__init__()
        self.per_image = per_image

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.shape[1]
        out = self.per_image(x.flatten(0, 1))
        return out.reshape(-1, g, *out.shape[1:])


class Embed(nn.Module):
    """An encoder (running batch-norm statistics, so per image) then a function of the embeddings."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = frozen_copy(encoder), head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class GroupStatsConv4(nn.Module):
    """A Conv-4 with fast weights and a linear head whose batch norm uses batch statistics, per group.

    ``context`` (the support images) joins every group before the statistics are taken and is dropped
    after: MAML's lone query. ``per_example``: every image is normalised with its own statistics.
    """

    def __init__(
        self,
        blocks: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]],
        eps: float,
        head_weight: torch.Tensor,
        head_bias: torch.Tensor,
        context: torch.Tensor | None,
        per_example: bool,
    ):
        super().__init__()
        self.n_blocks, self.eps, self.per_example = len(blocks), float(eps), per_example
        for i, (w, b, gamma, beta) in enumerate(blocks):
            c = w.shape[0]
            self.register_buffer(f"w{i}", w.detach().clone())
            self.register_buffer(f"b{i}", torch.zeros(c) if b is None else b.detach().clone())
            self.register_buffer(f"gamma{i}", torch.ones(c) if gamma is None else gamma.detach().clone())
            self.register_buffer(f"beta{i}", torch.zeros(c) if beta is None else beta.detach().clone())
        self.register_buffer("head_weight", head_weight.detach().clone())
        self.register_buffer("head_bias", head_bias.detach().clone())
        self.has_context = context is not None
        self.register_buffer("context", context.detach().clone() if context is not None else torch.zeros(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.shape[1]
        if self.has_context:
            context = self.context.unsqueeze(0).expand(x.shape[0], -1, -1, -1, -1)
            x = torch.cat([context, x], 1)
        m = x.shape[1]
        h = x.flatten(0, 1)
        for i in range(self.n_blocks):
            h = F.conv2d(h, getattr(self, f"w{i}"), getattr(self, f"b{i}"), padding=1)
            c, height, width = h.shape[1:]
            if self.per_example:
                mean = h.mean((2, 3), keepdim=True)
                var = (h - mean).pow(2).mean((2, 3), keepdim=True)
            else:
                grouped = h.reshape(-1, m, c, height, width)
                mean = grouped.mean((1, 3, 4), keepdim=True)
                var = (grouped - mean).pow(2).mean((1, 3, 4), keepdim=True)
                mean = mean.expand(-1, m, -1, -1, -1).reshape(-1, c, 1, 1)
                var = var.expand(-1, m, -1, -1, -1).reshape(-1, c, 1, 1)
            h = (h - mean) / torch.sqrt(var + self.eps)
            h = h * getattr(self, f"gamma{i}").view(1, -1, 1, 1) + getattr(self, f"beta{i}").view(1, -1, 1, 1)
            h = F.relu(F.max_pool2d(h, 2))
        z = h.flatten(1).reshape(-1, m, h[0].numel())[:, m - g :]
        return z @ self.head_weight.T + self.head_bias


def batch_independent(module: nn.Module) -> bool:
    """Whether every batch norm in ``module`` keeps running statistics: in eval mode each image is then
    embedded alone, whatever else shares its batch."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    return all(m.track_running_stats for m in norms)


class MetricHead(nn.Module):
    """Logits of embeddings [m, d] against fixed class points [n_way, d] (ProtoNet's prototypes)."""

    def __init__(self, points: torch.Tensor, metric: str, scale: float):
        super().__init__()
        self.register_buffer("points", points.detach().clone())
        self.metric, self.scale = metric, float(scale)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return metric_logits(z, self.points, self.metric, self.scale)


class FixedStatsConv4(nn.Module):
    """A Conv-4 plus linear head from a dict of weights, its batch norm using fixed statistics: per image."""

    def __init__(self, weights: dict[str, torch.Tensor], stats: list[tuple[torch.Tensor, torch.Tensor]], eps: float):
        super().__init__()
        self.n_blocks, self.eps = len(stats), float(eps)
        for i, (mean, var) in enumerate(stats):
            prefix = f"body.features.{i}"
            self.register_buffer(f"w{i}", weights[f"{prefix}.0.weight"].detach().clone())
            self.register_buffer(f"b{i}", weights[f"{prefix}.0.bias"].detach().clone())
            self.register_buffer(f"gamma{i}", weights[f"{prefix}.1.weight"].detach().clone())
            self.register_buffer(f"beta{i}", weights[f"{prefix}.1.bias"].detach().clone())
            self.register_buffer(f"mean{i}", mean.detach().clone())
            self.register_buffer(f"var{i}", var.detach().clone())
        self.register_buffer("head_weight", weights["head.weight"].detach().clone())
        self.register_buffer("head_bias", weights["head.bias"].detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i in range(self.n_blocks):
            h = F.conv2d(h, getattr(self, f"w{i}"), getattr(self, f"b{i}"), padding=1)
            h = F.batch_norm(
                h,
                getattr(self, f"mean{i}"),
                getattr(self, f"var{i}"),
                getattr(self, f"gamma{i}"),
                getattr(self, f"beta{i}"),
                training=False,
                eps=self.eps,
            )
            h = F.max_pool2d(F.relu(h), 2)
        return h.flatten(1) @ self.head_weight.T + self.head_bias


class ShiftViews(nn.Module):
    """Image groups [n, g, 1, H, W] -> [n, V * g, 1, H, W]: each of V shifts (``offsets``) of the whole group,
    view-major, blank paper where nothing moved in (`playground.data.augment.shift`)."""

    def __init__(self, offsets: list[tuple[int, int]]):
        super().__init__()
        self.offsets = [(int(dy), int(dx)) for dy, dx in offsets]
        self.radius = max([max(abs(dy), abs(dx)) for dy, dx in self.offsets] + [0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, (h, w) = self.radius, x.shape[-2:]
        padded = F.pad(x, (r, r, r, r))
        views = [padded[..., r - dy : r - dy + h, r - dx : r - dx + w] for dy, dx in self.offsets]
        return torch.stack(views, 1).flatten(1, 2)

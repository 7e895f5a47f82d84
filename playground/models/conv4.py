"""The Conv-4 backbone of the few-shot papers: 4 x [3x3 conv 64, batch norm, ReLU, 2x2 max-pool]."""

from __future__ import annotations

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int, track_running_stats: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels, track_running_stats=track_running_stats),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Module):
    """28x28 -> 14 -> 7 -> 3 -> 1: a 64-d embedding, with an optional linear head.

    Batch norm. With ``track_running_stats=True`` (metric learners such as ProtoNet) it
    keeps running statistics in training and uses them in eval mode, so an embedding does
    not depend on which other images share its batch. With ``track_running_stats=False``
    (MAML and the other gradient-based learners) it always normalises with the statistics
    of the batch it is given, at meta-training and at meta-test time alike: this is the
    MAML papers' (transductive) protocol, and it means the module has no buffers at all, so
    adapting with ``torch.func.functional_call`` can never write to shared state.
    """

    def __init__(
        self,
        in_channels: int = 1,
        hidden: int = 64,
        n_blocks: int = 4,
        out_features: int | None = None,
        track_running_stats: bool = True,
        zero_head: bool = False,
    ):
        super().__init__()
        channels = [in_channels] + [hidden] * n_blocks
        self.features = nn.Sequential(
            *[conv_block(channels[i], channels[i + 1], track_running_stats) for i in range(n_blocks)]
        )
        self.embedding_dim = hidden
        self.head = nn.Linear(hidden, out_features) if out_features else None
        if self.head is not None and zero_head:
            # Zero-initialised head: every class starts equal, so the meta-learned init does not
            # depend on the arbitrary order in which an episode numbers its classes.
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        return self.head(z) if self.head is not None else z

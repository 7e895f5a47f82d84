"""ResNet-12, the stronger few-shot backbone (Oreshkin et al. 2018, Lee et al. 2019): 4 residual blocks.

Each block: three [3x3 conv, batch norm, leaky ReLU 0.1] (the last without its ReLU), a 1x1 conv + batch
norm shortcut added before the final ReLU, then a 2x2 max-pool. The standard widths are 64-160-320-640;
``widths`` narrows it for a CPU. The embedding is the global average of the last feature map (640-d).
Built only from layers `playground.models.functional` computes directly, so MAML can adapt it
functionally (no weight swapping) as it does Conv-4.
"""

from __future__ import annotations

import torch
from torch import nn

STANDARD_WIDTHS = (64, 160, 320, 640)


def _conv_bn(in_channels: int, out_channels: int, kernel: int, track_running_stats: bool) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels, track_running_stats=track_running_stats),
    ]


class ResidualBlock(nn.Module):
    """body(x) + shortcut(x), leaky ReLU, 2x2 max-pool."""

    def __init__(self, in_channels: int, out_channels: int, track_running_stats: bool):
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(in_channels, out_channels, 3, track_running_stats),
            nn.LeakyReLU(0.1),
            *_conv_bn(out_channels, out_channels, 3, track_running_stats),
            nn.LeakyReLU(0.1),
            *_conv_bn(out_channels, out_channels, 3, track_running_stats),
        )
        self.shortcut = nn.Sequential(*_conv_bn(in_channels, out_channels, 1, track_running_stats))
        self.out = nn.Sequential(nn.LeakyReLU(0.1), nn.MaxPool2d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class ResNet12(nn.Module):
    """Images [n, C, H, W] -> embeddings [n, widths[-1]] (global average pooling)."""

    def __init__(
        self,
        in_channels: int = 3,
        widths: tuple[int, ...] = STANDARD_WIDTHS,
        track_running_stats: bool = True,
    ):
        super().__init__()
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"ResNet-12 takes 4 positive block widths (got {list(widths)})")
        channels = [in_channels, *widths]
        self.blocks = nn.Sequential(
            *[ResidualBlock(channels[i], channels[i + 1], track_running_stats) for i in range(4)]
        )
        self.embedding_dim = widths[-1]
        self.head = None  # as Conv4 without a head: `embed` and `forward` agree

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).mean((-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)

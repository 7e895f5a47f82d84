"""The Conv-4 backbone of the few-shot papers: 4 x [3x3 conv 64, batch norm, ReLU, 2x2 max-pool].

On colour images the papers keep the same four blocks: 32 filters for MAML on mini-ImageNet (84 -> 42 ->
21 -> 10 -> 5, an 800-d embedding), 64 for ProtoNet (1600-d). ``image_size`` sets the flattened size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(in_channels: int, out_channels: int, track_running_stats: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels, track_running_stats=track_running_stats),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Conv4(nn.Module):
    """28x28 -> 14 -> 7 -> 3 -> 1: a 64-d embedding, with an optional linear head. Larger images
    (``image_size``) keep their last feature map, flattened: ``hidden * side**2`` features.

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
        image_size: int = 28,
    ):
        super().__init__()
        channels = [in_channels] + [hidden] * n_blocks
        self.features = nn.Sequential(
            *[conv_block(channels[i], channels[i + 1], track_running_stats) for i in range(n_blocks)]
        )
        self.embedding_dim = hidden * feature_side(image_size, n_blocks) ** 2
        self.head = nn.Linear(self.embedding_dim, out_features) if out_features else None
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


def feature_side(image_size: int, n_blocks: int) -> int:
    """The side of the last feature map: each 2x2 max-pool halves it, rounding down."""
    side = image_size
    for _ in range(n_blocks):
        side //= 2
    if side < 1:
        raise ValueError(f"{image_size}x{image_size} images are too small for {n_blocks} pooling blocks")
    return side


def batch_stats_embed_supported(module: nn.Module) -> bool:
    """Whether `batch_stats_embed` computes ``module.embed``: a head-less Conv4, batch norm without running stats."""
    if type(module) is not Conv4 or module.head is not None:
        return False
    return all(
        type(block[0]) is nn.Conv2d
        and block[0].groups == 1
        and block[0].padding_mode == "zeros"
        and type(block[1]) is nn.BatchNorm2d
        and not block[1].track_running_stats
        and type(block[2]) is nn.ReLU
        and type(block[3]) is nn.MaxPool2d
        for block in module.features
    )


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` laid out NHWC (same values and shape), also when it has a single channel."""
    if x.shape[1] == 1:
        # With one channel, .contiguous(memory_format=...) sees nothing to do and keeps the NCHW
        # strides, so the convolution after it would stay NCHW: build the NHWC strides as a view.
        n, _, h, w = x.shape
        return x.reshape(n, h, w, 1).permute(0, 3, 1, 2)
    return x.contiguous(memory_format=torch.channels_last)


def batch_stats_embed(
    body: Conv4, params: dict[str, torch.Tensor], x: torch.Tensor, channels_last: bool = False
) -> torch.Tensor:
    """``body.embed(x)`` computed from the weights in ``params`` (names as in ``body.named_parameters``).

    A pure function of its arguments (writes nothing, swaps nothing into the module). Batch norm
    uses the statistics of the batch (`batch_stats_embed_supported` checks the body has no running
    statistics). Faster than running the module: max-pooling runs before the ReLU (they commute,
    since ReLU is monotone, so values and gradients are bit for bit the module's, and the ReLU
    touches a quarter of the values); ``channels_last`` lays activations out NHWC, where CPU pooling
    is several times faster (the same maths, but torch's NHWC CPU batch norm rounds worse, see
    `playground.algorithms.maml.MAML.channels_last`).

    Several tasks at once: with ``x`` [T, n, C, H, W] and every weight carrying a leading task
    dimension [T, ...], task t's channels become group t of one grouped convolution, and batch norm
    over the T * C channels normalises each task's images with their own statistics. Returns [T, n, d].
    """
    tasks = x.shape[0] if x.dim() == 5 else 0
    if tasks:
        n = x.shape[1]
        x = x.transpose(0, 1).flatten(1, 2)  # [n, T * C, H, W]
    if channels_last:
        x = to_channels_last(x)
    for i, (conv, bn, _, pool) in enumerate(body.features):
        w, b = params[f"features.{i}.0.weight"], params.get(f"features.{i}.0.bias")
        gamma, beta = params.get(f"features.{i}.1.weight"), params.get(f"features.{i}.1.bias")
        if tasks:
            w, b, gamma, beta = (None if t is None else t.flatten(0, 1) for t in (w, b, gamma, beta))
        x = F.conv2d(x, w, b, conv.stride, conv.padding, conv.dilation, max(tasks, 1))
        x = F.batch_norm(x, None, None, gamma, beta, True, 0.0, bn.eps)
        x = F.relu(_max_pool(x, pool))
    if tasks:
        return x.reshape(n, tasks, -1).transpose(0, 1)
    return x.flatten(1)


def _max_pool(x: torch.Tensor, pool: nn.MaxPool2d) -> torch.Tensor:
    """``pool(x)``; inside ``torch.compile``, a 2x2 stride-2 pool as a chain of `where` (same values and gradients).

    Compiled, max_pool2d keeps its argmax indices and differentiates through a scatter that inductor
    leaves to aten; the `where` chain fuses with batch norm and its gradients into the generated
    kernels: 1.4x faster NHWC second-order MAML steps (python -m bench.maml_speed --compile).
    """
    square2 = all(_pair(v) == (2, 2) for v in (pool.kernel_size, pool.stride))
    plain = _pair(pool.padding) == (0, 0) and _pair(pool.dilation) == (1, 1) and not pool.ceil_mode
    if torch.compiler.is_compiling() and square2 and plain:
        return max_pool_2x2_where(x)
    return F.max_pool2d(x, pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)


def _pair(v: int | tuple[int, ...]) -> tuple[int, ...]:
    return (v, v) if isinstance(v, int) else tuple(v)


def max_pool_2x2_where(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)`` from the four corners of each window, keeping the first maximum as it does.

    For finite values, bit for bit max_pool2d's values and gradients to every order: the gradient goes
    to the first maximum of each window, row by row, ties included (binary glyphs tie often). The
    corners are picked from a [..., H/2, 2, W/2, 2] view rather than as stride-2 slices: the
    gradient of a pick is then a compare on a loop index where a strided slice's needs a division,
    and inductor's kernel for it runs faster (compiled second-order MAML 1.65x -> 1.79x the reference,
    python -m bench.maml_speed --compile --malloc keep).
    """
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # an odd row or column is dropped, as by max_pool2d
    windows = x[..., :h, :w].unflatten(-1, (w // 2, 2)).unflatten(-3, (h // 2, 2))
    a, b = windows[..., 0, :, 0], windows[..., 0, :, 1]
    c, d = windows[..., 1, :, 0], windows[..., 1, :, 1]
    m = torch.where(b > a, b, a)  # strictly greater: a tie keeps the earlier element
    m = torch.where(c > m, c, m)
    return torch.where(d > m, d, m)

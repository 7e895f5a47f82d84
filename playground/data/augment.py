"""Image shifts: random ones for meta-training, and the fixed grid of views for test-time averaging.

A glyph drawn a pixel or two to the side is the same glyph, but a Conv-4 on 28x28 images
does not quite know it: after downsampling from 105 px a stroke covers one or two pixels, and
where it lands changes the features. Shifting during training teaches the invariance; averaging
a prediction over shifted copies at test time (`shift_views`) gets part of it for free.
Shifts fill with blank paper (zeros); they never wrap ink round to the other side.
"""

from __future__ import annotations

import torch

from playground.data.episodes import TaskBatch


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images [..., H, W] moved down by ``dy`` and right by ``dx`` pixels, blank where nothing moved in."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def view_offsets(radius: int) -> list[tuple[int, int]]:
    """Every (dy, dx) with both in [-radius, radius]: (2 radius + 1)^2 offsets, (0, 0) included."""
    if radius < 0:
        raise ValueError(f"the shift radius must be >= 0 (got {radius})")
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]


def shift_views(x: torch.Tensor, radius: int) -> list[torch.Tensor]:
    """The images x shifted by each of `view_offsets(radius)`."""
    return [shift(x, dy, dx) for dy, dx in view_offsets(radius)]


def random_shifts(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of x [..., 1, H, W] moved by its own random offset, each coordinate uniform in
    [-max_shift, max_shift]. The offsets come from ``generator`` (CPU), so runs are reproducible."""
    if max_shift <= 0:
        return x
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    offsets = torch.randint(-max_shift, max_shift + 1, (flat.shape[0], 2), generator=generator).to(x.device)
    out = torch.empty_like(flat)
    # One shift per distinct offset, at most (2 max_shift + 1)^2 of them, rather than one per image.
    for dy, dx in view_offsets(max_shift):
        chosen = (offsets[:, 0] == dy) & (offsets[:, 1] == dx)
        if chosen.any():
            out[chosen] = shift(flat[chosen], dy, dx)
    return out.reshape(*lead, *x.shape[-3:])


def shift_tasks(tasks: TaskBatch, max_shift: int, generator: torch.Generator | None = None) -> TaskBatch:
    """The batch with every support and query image randomly shifted (`random_shifts`)."""
    if max_shift <= 0:
        return tasks
    return TaskBatch(
        random_shifts(tasks.support_x, max_shift, generator),
        tasks.support_y,
        random_shifts(tasks.query_x, max_shift, generator),
        tasks.query_y,
        tasks.class_names,
    )


# Colour training augmentation, the usual for mini-ImageNet and CIFAR-FS: a random crop with padding
# (a random shift with black fill), a horizontal flip and colour jitter, on the [0, 1] pixels.
CROP_PADDING_FRACTION = 8  # padding = image side // this: 4 px on 32x32, 10 px on 84x84
JITTER = 0.4  # brightness, contrast and saturation each scaled by a factor in [1 - JITTER, 1 + JITTER]


def colour_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images [..., 3, H, W] in [0, 1], each randomly shifted, flipped and colour-jittered (its own draws)."""
    lead, shape = x.shape[:-3], x.shape[-3:]
    flat = random_shifts(x.reshape(-1, *shape), max(1, shape[-1] // CROP_PADDING_FRACTION), generator)
    n = flat.shape[0]

    def draw(*size: int) -> torch.Tensor:
        return torch.rand(n, *size, generator=generator).to(x.device)

    flip = draw(1, 1, 1) < 0.5
    flat = torch.where(flip, flat.flip(-1), flat)
    brightness, contrast, saturation = (1 + JITTER * (2 * draw(1, 1, 1) - 1) for _ in range(3))
    flat = flat * brightness
    grey = (flat * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(3, 1, 1)).sum(-3, keepdim=True)
    flat = (flat - grey.mean((-2, -1), keepdim=True)) * contrast + grey.mean((-2, -1), keepdim=True)
    grey = (flat * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(3, 1, 1)).sum(-3, keepdim=True)
    flat = (flat - grey) * saturation + grey
    return flat.clamp(0, 1).reshape(*lead, *shape)


def colour_augment_tasks(
    tasks: TaskBatch, normalization: tuple | None, generator: torch.Generator | None = None
) -> TaskBatch:
    """The batch with every colour image augmented (`colour_augment`) in [0, 1] and normalised again."""
    from playground.data.episodes import denormalize, normalize

    def one(x: torch.Tensor) -> torch.Tensor:
        if normalization is None:
            return colour_augment(x, generator)
        return normalize(colour_augment(denormalize(x, normalization), generator), normalization)

    return TaskBatch(one(tasks.support_x), tasks.support_y, one(tasks.query_x), tasks.query_y, tasks.class_names)

"""Image shifts: exact, blank-filled, reproducible; and `train --augment-shift` feeds shifted images."""

from __future__ import annotations

import pytest
import torch

from playground.data.augment import random_shifts, shift, shift_tasks, shift_views, view_offsets
from playground.data.episodes import TaskSampler


def _dot(y: int, x: int, size: int = 7) -> torch.Tensor:
    img = torch.zeros(1, 1, size, size)
    img[0, 0, y, x] = 1.0
    return img


@pytest.mark.parametrize("dy, dx", [(0, 0), (1, 0), (0, -2), (-3, 2), (2, 2)])
def test_shift_moves_ink_by_exactly_the_offset(dy, dx):
    out = shift(_dot(3, 3), dy, dx)
    assert torch.nonzero(out[0, 0]).tolist() == [[3 + dy, 3 + dx]]


def test_shift_never_wraps_ink_round_to_the_other_side():
    edge = _dot(0, 6)
    assert shift(edge, -1, 0).sum() == 0 and shift(edge, 0, 1).sum() == 0
    assert shift(edge, 9, 9).sum() == 0


def test_views_are_every_offset_in_the_square_with_the_original_among_them():
    assert view_offsets(0) == [(0, 0)]
    assert len(view_offsets(2)) == 25 and len(set(view_offsets(2))) == 25
    views = shift_views(_dot(3, 3), 1)
    assert len(views) == 9 and any(torch.equal(v, _dot(3, 3)) for v in views)
    with pytest.raises(ValueError, match="radius must be >= 0"):
        view_offsets(-1)


def test_random_shifts_are_bounded_per_image_and_reproducible():
    x = _dot(3, 3).repeat(200, 1, 1, 1)
    a = random_shifts(x, 2, torch.Generator().manual_seed(5))
    b = random_shifts(x, 2, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    where = torch.nonzero(a[:, 0])  # one ink pixel per image, never lost at this distance from the edge
    assert len(where) == 200
    moves = where[:, 1:] - 3
    assert moves.abs().max() == 2
    # Each image draws its own offset: all 25 of them turn up among 200 images.
    assert len({tuple(m) for m in moves.tolist()}) == 25
    assert torch.equal(random_shifts(x, 0), x)


def test_shift_tasks_moves_images_and_keeps_labels(glyphs_test):
    tasks = TaskSampler(glyphs_test, 5, 1, 3, seed=0).sample_batch(2)
    moved = shift_tasks(tasks, 2, torch.Generator().manual_seed(0))
    assert moved.support_x.shape == tasks.support_x.shape and moved.query_x.shape == tasks.query_x.shape
    assert torch.equal(moved.support_y, tasks.support_y) and torch.equal(moved.query_y, tasks.query_y)
    assert not torch.equal(moved.query_x, tasks.query_x)
    # Shifting only moves ink (and may push a little past the edge): it never adds any.
    assert (moved.query_x.sum((-1, -2, -3)) <= tasks.query_x.sum((-1, -2, -3)) + 1e-4).all()

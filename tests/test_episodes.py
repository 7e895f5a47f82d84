from __future__ import annotations

import pytest
import torch

from playground.data.episodes import TaskSampler, stack_tasks


def test_same_seed_same_episodes_different_seed_different(glyphs_test):
    a = TaskSampler(glyphs_test, 5, 2, 3, seed=7).sample_batch(4)
    b = TaskSampler(glyphs_test, 5, 2, 3, seed=7).sample_batch(4)
    c = TaskSampler(glyphs_test, 5, 2, 3, seed=8).sample_batch(4)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    assert a.class_names == b.class_names
    assert not torch.equal(a.support_x, c.support_x)


def test_task_shapes_labels_and_disjoint_support_query(glyphs_test):
    batch = TaskSampler(glyphs_test, 4, 3, 2, seed=0).sample_batch(2)
    assert batch.support_x.shape == (2, 12, 1, 28, 28)
    assert batch.query_x.shape == (2, 8, 1, 28, 28)
    assert batch.support_y[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert batch.query_y[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert 0.0 <= batch.support_x.min() and batch.support_x.max() <= 1.0
    task = batch[0]
    assert len(set(task.class_names)) == 4
    # No query image is also a support image.
    flat_s = task.support_x.flatten(1)
    for q in task.query_x.flatten(1):
        assert not (flat_s == q).all(-1).any()


def test_sampler_state_resumes_the_same_stream(glyphs_test):
    s = TaskSampler(glyphs_test, 5, 1, 1, seed=3)
    s.sample_batch(2)
    state = s.state_dict()
    nxt = s.sample_batch(2)
    s2 = TaskSampler(glyphs_test, 5, 1, 1, seed=99)
    s2.load_state_dict(state)
    assert torch.equal(s2.sample_batch(2).support_x, nxt.support_x)


def test_stack_and_split(glyphs_test):
    s = TaskSampler(glyphs_test, 3, 1, 1, seed=0)
    tasks = [s.sample() for _ in range(5)]
    batch = stack_tasks(tasks)
    assert len(batch) == 5
    parts = [batch.split(2, i) for i in range(2)]
    assert [len(p) for p in parts] == [3, 2]
    assert torch.equal(torch.cat([p.support_x for p in parts]), batch.support_x)


@pytest.mark.parametrize(
    "args, message",
    [
        ((1, 1, 1), "n_way must be at least 2"),
        ((5, 0, 1), "k_shot must be at least 1"),
        ((5, 1, 0), "n_query"),
        ((500, 1, 1), "more than the 24 classes"),
        ((5, 15, 10), "exceeds the 20 drawings"),
    ],
)
def test_sampler_rejects_impossible_tasks(glyphs_test, args, message):
    with pytest.raises(ValueError, match=message):
        TaskSampler(glyphs_test, *args)


def test_within_alphabet_episodes_take_every_class_from_one_alphabet():
    from playground.data.episodes import alphabet_of
    from playground.data.protocols import ClassDataset

    # Three alphabets of 6, 6 and 3 characters, each also rotated: rotated ones are alphabets of their own.
    names = [f"{a}/character{i:02d}" for a, n in (("Greek", 6), ("Latin", 6), ("Tiny", 3)) for i in range(n)]
    names += [f"{n} rot90" for n in names]
    data = ClassDataset(torch.zeros(len(names), 4, 28, 28, dtype=torch.uint8), names)
    assert alphabet_of("Greek/character01 rot90") == "Greek rot90" and alphabet_of("glyph03") == "glyph03"
    sampler = TaskSampler(data, 5, 1, 1, seed=0, within_alphabet=True)
    seen = set()
    for names_of_task in sampler.sample_batch(60).class_names:
        alphabets = {alphabet_of(n) for n in names_of_task}
        assert len(alphabets) == 1 and len(set(names_of_task)) == 5
        seen |= alphabets
    assert seen == {"Greek", "Latin", "Greek rot90", "Latin rot90"}  # never Tiny: 3 characters < 5 ways
    mixed = TaskSampler(data, 5, 1, 1, seed=0).sample_batch(60).class_names
    assert any(len({alphabet_of(n) for n in t}) > 1 for t in mixed)
    with pytest.raises(ValueError, match="at least 7 characters; the largest has 6"):
        TaskSampler(data, 7, 1, 1, within_alphabet=True)

"""Sampled Omniglot tasks for the app: held-out characters, named as people write them."""

from __future__ import annotations

import re

import pytest

from playground.interactive.sample_tasks import sample_distractors, sample_user_task

pytestmark = pytest.mark.omniglot


def test_sampled_classes_are_named_as_people_write_them(omniglot):
    sampled = sample_user_task(omniglot, 20, 1, 1, seed=3)
    for name in sampled.task.class_names:
        assert "_" not in name and "#" not in name and "character" not in name, name
        assert re.fullmatch(r"[A-Z][\w .()'-]* [1-9]\d*", name), name
    assert sampled.task.is_ready and len(sampled.queries) == 20


def test_distractors_leave_out_the_task_characters_by_the_same_names(omniglot):
    sampled = sample_user_task(omniglot, 5, 1, 0, alphabet="Atlantean", seed=0)
    everything = sample_distractors(omniglot, 0)
    assert everything == []
    pool = len(omniglot.indices("images_evaluation", None))
    sample_distractors(omniglot, pool - 5, exclude=set(sampled.task.class_names))  # room for all but the task's
    with pytest.raises(ValueError, match=f"between 0 and {pool - 5}"):
        sample_distractors(omniglot, pool - 4, exclude=set(sampled.task.class_names))

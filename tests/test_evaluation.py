from __future__ import annotations

import math

import pytest

from playground.algorithms import create_learner
from playground.evaluation.few_shot import EvalResult, confidence_interval_95, evaluate_few_shot


def test_ci_formula_matches_1_96_std_over_sqrt_n():
    values = [0.8, 0.9, 1.0, 0.7, 0.6]
    mean = sum(values) / 5
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / 4)
    assert confidence_interval_95(values) == pytest.approx(1.96 * std / math.sqrt(5))
    assert confidence_interval_95([1.0]) == 0.0
    assert confidence_interval_95([0.5] * 10) == 0.0


def test_format_is_percent_with_plus_minus():
    r = EvalResult([0.98, 0.99, 0.995, 0.985], 5, 1)
    assert r.format() == f"{100 * r.mean:.1f} ± {100 * r.ci95:.1f} %"
    assert r.as_dict()["episodes"] == 4


def test_evaluate_uses_identical_episodes_for_the_same_seed(glyphs_test):
    learner = create_learner("protonet", hidden=16)
    a = evaluate_few_shot(learner, glyphs_test, 5, 1, 3, episodes=12, seed=4, batch_size=5)
    b = evaluate_few_shot(learner, glyphs_test, 5, 1, 3, episodes=12, seed=4, batch_size=12)
    assert a.accuracies == b.accuracies  # batch size must not change which episodes are drawn
    assert len(a.accuracies) == 12


def test_evaluate_rejects_zero_episodes(glyphs_test):
    with pytest.raises(ValueError, match="episodes"):
        evaluate_few_shot(create_learner("protonet", hidden=16), glyphs_test, episodes=0)

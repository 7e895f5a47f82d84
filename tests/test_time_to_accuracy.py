"""bench.time_to_accuracy: the outer rate follows the training CLI's cosine schedule when asked, and not otherwise."""

from __future__ import annotations

import json
import math

import pytest

from bench.time_to_accuracy import main

# A tiny ProtoNet run that cannot reach its target: every check is logged, none is confirmed.
QUICK = ["--algorithm", "protonet", "--set", "hidden=8", "--query", "1", "--meta-batch", "1"]
QUICK += ["--check-every", "1", "--check-episodes", "2", "--max-minutes", "0.02", "--target", "1.01", "--device", "cpu"]


def _checks(log, *extra: str) -> list[dict]:
    assert main([*QUICK, "--log", str(log), *extra]) == 1  # 1: not reached
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.slow  # two timed training runs
@pytest.mark.omniglot
def test_cosine_over_decays_the_outer_rate_like_train_and_constant_is_the_default(omniglot, tmp_path):
    constant = _checks(tmp_path / "constant.jsonl", "--set", "outer_lr=0.002")
    assert constant and all(c["outer_lr"] == pytest.approx(0.002) for c in constant)
    decayed = _checks(tmp_path / "cosine.jsonl", "--set", "outer_lr=0.002", "--cosine-over", "2")
    # playground.training.cosine_schedule over 2 iterations: halfway down after 1, at its floor (5%) from 2 on.
    assert [c["iteration"] for c in decayed] == list(range(1, len(decayed) + 1))
    expected = [0.002 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(c["iteration"], 2) / 2))) for c in decayed]
    assert [c["outer_lr"] for c in decayed] == pytest.approx(expected)
    assert decayed[0]["outer_lr"] == pytest.approx(0.00105)


def test_cosine_over_zero_is_refused_with_a_message(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--cosine-over", "0"])
    assert exit_.value.code == 2
    assert "--cosine-over must be at least 1 iteration, got 0" in capsys.readouterr().err

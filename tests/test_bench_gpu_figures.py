"""bench.gpu_figures: the device-call plan parses, and its runner keeps to its limits and its budget."""

from __future__ import annotations

import pytest

from bench.gpu_figures import Step, check, main, run, steps


def test_every_planned_step_parses_with_its_own_benchmark():
    assert check(steps("cuda")) == []
    assert main(["unused", "--check"]) == 0


def test_a_flag_a_benchmark_does_not_take_is_reported_by_step():
    problems = check([Step("eval", 10, "bench.eval_speed", ("--no-such-flag",))])
    assert len(problems) == 1 and problems[0].startswith("eval: bench.eval_speed refused '--no-such-flag'")


@pytest.mark.slow  # runs benchmark steps to their time limits
def test_steps_run_in_order_are_stopped_at_their_limit_and_skipped_past_the_budget(tmp_path):
    plan = [
        # Training-sized work on the CPU: far longer than its 2-second limit.
        Step("slow", 2, "bench.maml_speed", ("--device", "cpu", "--steps", "50")),
        Step("quick", 60, "bench.gpu_figures", ("unused", "--check")),
    ]
    lines = run(plan, tmp_path, budget=120)
    assert lines[1].startswith("slow: stopped at its limit of 2 s")
    assert lines[2].startswith("quick: exit 0")
    assert f"all {len(steps('cuda'))} steps parse" in (tmp_path / "quick.log").read_text()
    # Each step's log and the summary: the device tool brings back at most 8 files.
    assert len(steps("cuda")) + 1 <= 8
    assert (tmp_path / "slow.log").read_text().startswith("$ ")
    assert (tmp_path / "summary.log").read_text().splitlines() == lines
    assert "torch" in lines[0]  # the hardware and versions line

    late = run([Step("late", 60, "bench.eval_speed", ())], tmp_path / "late", budget=0.5)
    assert late[1].startswith("late: skipped")
    assert not (tmp_path / "late" / "late.log").exists()

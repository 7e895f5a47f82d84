"""bench.process_throughput: the gloo ranks really train together, and every row is timed."""

from __future__ import annotations

import pytest

from bench.process_throughput import main
from playground.runtime.allocator import is_glibc


@pytest.mark.slow  # starts real ranks
def test_ranks_step_together_and_every_row_is_timed(capsys):
    malloc = ["--malloc", "keep"] if is_glibc() else []
    result = main(["--processes", "2", "--batch", "4", "--steps", "1", "--warmup", "0", "--threads", "1", *malloc])
    assert {"reference", "threads", "processes"} <= result.keys()
    assert all(result[k] > 0 for k in ("reference", "threads", "processes"))
    # The ranks trained (their weights moved), and applied the same all-reduced update (identical weights).
    assert result["rank_moved"] > 1e-5
    assert result["rank_spread"] == 0.0
    # Each spawned rank set its own allocator: a rank starts with glibc's defaults, not this process's.
    assert result["ranks_kept_memory"] is is_glibc()
    out = capsys.readouterr().out
    assert "2 gloo processes x 1 thread" in out and "reference (clone per task)" in out
    assert f"malloc {'keep' if malloc else 'default'}" in out


@pytest.mark.slow  # starts real ranks
def test_ranks_keep_glibcs_defaults_unless_asked():
    result = main(["--processes", "2", "--batch", "2", "--steps", "1", "--warmup", "0", "--threads", "1"])
    assert result["ranks_kept_memory"] is False


def test_a_batch_that_does_not_divide_among_the_processes_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--processes", "3", "--batch", "4"])
    assert "--batch 4 does not divide among 3 processes" in capsys.readouterr().err

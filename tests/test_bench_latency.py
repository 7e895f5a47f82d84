"""bench.adapt_latency: one row per shipped model and task size, and a table a reader can check."""

from __future__ import annotations

import pytest

from bench.adapt_latency import main, markdown_table, ms


@pytest.mark.omniglot
def test_latency_rows_cover_every_model_and_task_and_the_table_shows_them(omniglot, capsys):
    args = ["--models", "protonet_lake", "maml_lake", "--ways", "2", "3", "--shots", "1", "2"]
    rows = main([*args, "--repeats", "3", "--steps", "4", "--threads", "1", "--markdown"])
    assert [(r.model, r.n_way, r.k_shot) for r in rows] == [
        (m, n, k) for n in (2, 3) for k in (1, 2) for m in ("protonet_lake", "maml_lake")
    ]
    # Only the gradient-based model takes inner steps, and it takes the ones asked for.
    assert {r.model: r.steps for r in rows} == {"protonet_lake": None, "maml_lake": 4}
    for r in rows:
        assert 0 < r.adapt_p50 <= r.total_p50 <= r.total_p95
    out = capsys.readouterr().out
    table = markdown_table(rows)
    assert table in out
    lines = table.splitlines()
    assert lines[0] == "| model | steps | 2-way 1-shot | 2-way 2-shot | 3-way 1-shot | 3-way 2-shot |"
    assert lines[2].startswith("| protonet_lake | – | ") and lines[3].startswith("| maml_lake | 4 | ")
    first = next(r for r in rows if r.model == "maml_lake")
    assert f"{ms(first.total_p50)} / {ms(first.total_p95)}" == lines[3].split(" | ")[2]


def test_cells_keep_a_decimal_below_ten_milliseconds():
    assert [ms(0.04), ms(3.65), ms(9.94), ms(10.4), ms(702.6)] == ["0.0", "3.6", "9.9", "10", "703"]


def test_an_unknown_model_name_is_named_in_the_error(capsys):
    with pytest.raises(SystemExit):
        main(["--models", "protonet_lake", "no_such_model"])
    err = capsys.readouterr().err
    assert "no_such_model" in err and "protonet_lake" in err

"""`report --readme`: the results table is rewritten in place, and the README's tables match the model cards."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.cli import main
from playground.zoo.readme_table import replace_table
from playground.zoo.reporting import results_table
from playground.zoo.shipped import CHECKPOINT_DIR, shipped_models

ROOT = Path(__file__).resolve().parents[1]
VINYALS_DIR = ROOT / "assets" / "vinyals"

DOC = """# Results

Lake:

| model | a | training |
| --- | --- | --- |
| `m_lake` | 1 % | 1 it |

Vinyals:

| model | a | training |
| --- | --- | --- |
| `m_vinyals` | 2 % | 2 it |
| ↳ Someone 2017 | 3 (short by 1.0) | published |

The end.
"""


def test_the_table_with_the_same_header_kind_and_models_is_replaced_and_nothing_else():
    new = (
        "| model | a | training |\n| --- | --- | --- |\n| `m_vinyals` | 4 % | 3 it |\n"
        "| ↳ Someone 2017 | 3 (reached) | published |\n"
    )
    out = replace_table(DOC, new)
    assert "| `m_vinyals` | 4 % | 3 it |" in out and "| `m_vinyals` | 2 % | 2 it |" not in out
    assert "| ↳ Someone 2017 | 3 (reached) | published |" in out and "short by 1.0" not in out
    assert "| `m_lake` | 1 % | 1 it |" in out  # the other table, same header, is left alone
    assert out.startswith("# Results\n") and out.endswith("\nThe end.\n")
    assert out.count("\n") == DOC.count("\n")


def test_a_table_is_never_pasted_over_one_of_another_kind():
    # Same header and model, but without the papers' rows: the vinyals table above has them.
    with pytest.raises(ValueError, match="no table without published-figure rows"):
        replace_table(DOC, "| model | a | training |\n| --- | --- | --- |\n| `m_vinyals` | 4 % | 3 it |\n")
    with pytest.raises(ValueError, match="other_model"):  # no model in common
        replace_table(DOC, "| model | a | training |\n| --- | --- | --- |\n| `other_model` | 4 % | 3 it |\n")
    with pytest.raises(ValueError, match="header"):
        replace_table(DOC, "| model | b | training |\n| --- | --- | --- |\n| `m_lake` | 4 % | 3 it |\n")


@pytest.mark.parametrize("directory, papers", [(CHECKPOINT_DIR, False), (VINYALS_DIR, True)])
def test_the_readme_tables_are_the_model_cards(directory, papers):
    """Shipping a model without `report --readme` leaves the README behind its card: this fails then."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = results_table(shipped_models(directory), papers=papers)
    hint = f"run: python -m playground report --dir {directory}{' --papers' if papers else ''} --readme README.md"
    assert replace_table(readme, table) == readme, hint


def test_report_readme_writes_the_file_and_refuses_a_file_without_the_table(tmp_path, capsys):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stale = readme.replace("| `maml_vinyals` | 98.5 ± 0.2 %", "| `maml_vinyals` | 11.1 ± 0.2 %", 1)
    assert stale != readme
    path = tmp_path / "README.md"
    path.write_text(stale, encoding="utf-8")
    main(["report", "--dir", str(VINYALS_DIR), "--papers", "--readme", str(path)])
    assert path.read_text(encoding="utf-8") == readme
    assert "table updated" in capsys.readouterr().err

    other = tmp_path / "other.md"
    other.write_text("# nothing here\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no table with published-figure rows"):
        main(["report", "--dir", str(VINYALS_DIR), "--papers", "--readme", str(other)])
    assert other.read_text(encoding="utf-8") == "# nothing here\n"
    with pytest.raises(SystemExit, match="is not a file"):
        main(["report", "--readme", str(tmp_path / "missing.md")])


def test_the_style_shift_column_shows_each_cards_mixed_row_and_is_left_out_when_no_card_has_one():
    import dataclasses

    entries = {e.name: e for e in shipped_models(CHECKPOINT_DIR)}
    protonet, pixel = entries["protonet_lake"], entries["pixel_nn"]
    table = results_table([protonet, pixel])
    head, _, *rows = table.splitlines()
    column = head.split(" | ").index("style shift (5-way 1-shot)")
    for entry, row in zip((protonet, pixel), rows):
        assert row.split(" | ")[column] == entry.card.style_shift.result(5, 1).text
    # A card without the figure gets a dash; with no card holding one, no column at all.
    bare = dataclasses.replace(pixel, card=dataclasses.replace(pixel.card, style_shift=None))
    assert table.splitlines()[2] == results_table([protonet, bare]).splitlines()[2]
    assert results_table([protonet, bare]).splitlines()[3].split(" | ")[column] == "–"
    assert "style shift" not in results_table([bare]) and "style shift" not in results_table([], papers=True)

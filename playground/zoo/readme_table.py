"""Put a freshly generated results table in place of its old copy in a Markdown file (the README)."""

from __future__ import annotations

import re
from pathlib import Path

_NAME = re.compile(r"^\|\s*`([^`]+)`")
_PAPER_ROW = "| ↳"  # reporting.results_table(papers=True) puts the published figures in rows that start so


def _tables(lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) line spans of each Markdown table: runs of lines that start with '|'."""
    spans, start = [], None
    for i, line in enumerate([*lines, ""]):
        if line.startswith("|"):
            start = i if start is None else start
        elif start is not None:
            spans.append((start, i))
            start = None
    return spans


def _names(rows: list[str]) -> set[str]:
    return {m.group(1) for m in map(_NAME.match, rows) if m}


def _has_paper_rows(rows: list[str]) -> bool:
    return any(row.startswith(_PAPER_ROW) for row in rows)


def replace_table(text: str, table: str) -> str:
    """`text` with the table most like `table` replaced by it: same header, published-figure rows or not,
    and the most models in common.

    Raises ValueError when no table in `text` is of that kind and has one of its models: a report is never
    pasted where it does not belong (a table without the papers' rows over one with them, say).
    """
    new = table.strip("\n").splitlines()
    lines = text.splitlines()
    wanted = _names(new)
    best, shared = None, 0
    for start, end in _tables(lines):
        if lines[start].strip() != new[0].strip() or _has_paper_rows(lines[start:end]) != _has_paper_rows(new):
            continue
        overlap = len(_names(lines[start:end]) & wanted)
        if overlap > shared:
            best, shared = (start, end), overlap
    if best is None:
        kind = "with" if _has_paper_rows(new) else "without"
        raise ValueError(
            f"no table {kind} published-figure rows, with the header {new[0].strip()!r} and any of the models "
            f"{', '.join(sorted(wanted))}"
        )
    start, end = best
    out = "\n".join([*lines[:start], *new, *lines[end:]])
    return out + "\n" if text.endswith("\n") else out


def write_table(path: str | Path, table: str) -> bool:
    """Put ``table`` in place of its old copy in the Markdown file ``path`` (`replace_table`); whether the
    file changed. Raises ValueError as `replace_table` does, UnicodeDecodeError for a file that is not UTF-8."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    updated = replace_table(text, table)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return updated != text

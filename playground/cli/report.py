"""``report``: the README's results table, from the model cards (no computation)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playground.zoo.papers import PUBLISHED_COLOUR, colour_papers_table
from playground.zoo.readme_table import write_table
from playground.zoo.reporting import results_table
from playground.zoo.shipped import CHECKPOINT_DIR, shipped_models

NAME = "report"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    rp = subparsers.add_parser(NAME, help="the README's results table, from the model cards (no computation)")
    rp.add_argument("--dir", default=None, help="checkpoint folder (default assets/checkpoints)")
    rp.add_argument(
        "--papers", action="store_true", help="under each vinyals model, the published figures for its algorithm"
    )
    rp.add_argument(
        "--readme",
        default=None,
        metavar="FILE",
        help="also write the table into FILE (e.g. README.md) in place of its old copy: the table there with the "
        "same header and models",
    )
    return rp


def run(args: argparse.Namespace) -> None:
    entries = list(shipped_models(args.dir or CHECKPOINT_DIR))
    table = results_table([e for e in entries if e.dataset == "omniglot"], args.papers)
    print(table)
    if args.papers:
        for name in PUBLISHED_COLOUR:
            print("\n" + colour_papers_table(name, [e.card for e in entries if e.card]))
    if args.readme:
        path = Path(args.readme)
        if not path.is_file():
            raise SystemExit(f"--readme: {path} is not a file")
        try:
            changed = write_table(path, table)
        except ValueError as e:  # a UnicodeDecodeError too: a file that is not UTF-8
            raise SystemExit(f"--readme {path}: {e}") from None
        print(f"{path}: table {'updated' if changed else 'already up to date'}", file=sys.stderr)

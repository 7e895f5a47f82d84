"""``style-shift``: the style-shift benchmark on shipped models (its options are `playground.style_bench`'s)."""

from __future__ import annotations

import argparse

from playground import style_bench
from playground.cli.common import add_threads_flag, command_line, work_starts

NAME = "style-shift"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    ss = subparsers.add_parser(
        NAME,
        help="the style-shift benchmark: shipped models on shifted evaluation drawings (docs/style_shift.md)",
    )
    style_bench.add_arguments(ss)  # shared with bench.style_shift
    add_threads_flag(ss)
    return ss


def run(args: argparse.Namespace) -> None:
    work_starts()
    style_bench.run_from_args(args, command_line(args))

"""``style-shift``: the style-shift benchmark on shipped models (options: `playground.evaluation.style_shift`)."""

from __future__ import annotations

import argparse

from playground.cli.common import add_threads_flag, command_line, work_starts
from playground.evaluation import style_shift as benchmark

NAME = "style-shift"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    ss = subparsers.add_parser(
        NAME,
        help="the style-shift benchmark: shipped models on shifted evaluation drawings (docs/style_shift.md)",
    )
    benchmark.add_arguments(ss)  # shared with bench.style_shift
    add_threads_flag(ss)
    return ss


def run(args: argparse.Namespace) -> None:
    work_starts()
    benchmark.run_from_args(args, command_line(args))

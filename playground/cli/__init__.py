"""``python -m playground train|evaluate|lake-runs|...``: one module per command, each with ``add_parser``
and ``run``; the flags several commands share are in `playground.cli.common`."""

from __future__ import annotations

import argparse
import signal
import sys

import torch

from playground.algorithms.plugins import PluginError, add_plugin_flag, load_plugins, plugin_flags
from playground.cli import (
    calibrate_steps,
    download,
    ensemble,
    evaluate,
    lake_runs,
    report,
    ship,
    sinusoid,
    style_shift,
    train,
)
from playground.cli.common import forget_notes, say_when_work_starts
from playground.data.omniglot import DataError
from playground.runtime import distributed
from playground.runtime.allocator import keep_freed_memory
from playground.runtime.threads import set_threads
from playground.zoo.checkpoints import CheckpointError

# In the order the help lists them.
COMMANDS = (train, evaluate, lake_runs, calibrate_steps, report, ensemble, ship, style_shift, download, sinusoid)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m playground", description="Meta-learning on Omniglot.")
    add_plugin_flag(parser)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: this process's arguments) names; the exit status."""
    try:
        load_plugins(plugin_flags(sys.argv[1:] if argv is None else argv))  # before the parser takes its choices
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in model cards
    args.memory_kept = getattr(args, "malloc", "default") == "keep" and keep_freed_memory()
    threads_before = torch.get_num_threads()  # put back on return: tests call main in-process
    if hasattr(args, "threads"):
        said = set_threads(args.threads).describe()
        if said and distributed.is_main():
            say_when_work_starts(said)
    command = next(c for c in COMMANDS if c.NAME == args.command)
    try:
        command.run(args)
    except (ValueError, DataError, CheckpointError, FloatingPointError) as exc:
        if distributed.is_main():  # under torchrun every rank fails alike: one copy of the message
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # Training's own interruption says what its checkpoints hold; anything else claims nothing.
        if distributed.is_main():
            print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)
    finally:
        torch.set_num_threads(threads_before)
        forget_notes()
    return 0


__all__ = ["COMMANDS", "build_parser", "main"]

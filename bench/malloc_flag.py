"""The benchmarks' ``--malloc default|keep`` flag: glibc's malloc as it is (their default), or keeping freed memory."""

from __future__ import annotations

import argparse

from playground.cli.common import add_malloc_flag as _add_cli_malloc_flag
from playground.runtime.allocator import keep_freed_memory


def add_malloc_flag(ap: argparse.ArgumentParser) -> None:
    """The CLI's ``--malloc``, with glibc's own settings by default: a benchmark changes them only when asked."""
    _add_cli_malloc_flag(ap, default="default")


def apply_malloc_flag(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Keep freed memory if asked; refuse the flag where the C library is not glibc."""
    if args.malloc == "keep" and not keep_freed_memory():
        ap.error("--malloc keep needs glibc's malloc (Linux); this C library is not glibc")

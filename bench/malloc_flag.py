"""The benchmarks' ``--malloc default|keep`` flag: glibc's malloc as it is, or keeping freed memory."""

from __future__ import annotations

import argparse

from playground.allocator import keep_freed_memory


def add_malloc_flag(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--malloc",
        choices=["default", "keep"],
        default="default",
        help="glibc's malloc as it is, or keeping freed memory for reuse in the whole process, as "
        "`python -m playground train` and the app do (no page faults for reused buffers)",
    )


def apply_malloc_flag(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Keep freed memory if asked; refuse the flag where the C library is not glibc."""
    if args.malloc == "keep" and not keep_freed_memory():
        ap.error("--malloc keep needs glibc's malloc (Linux); this C library is not glibc")

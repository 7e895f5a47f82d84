"""What several commands share: argument types, the process flags (--device, --data-dir, --malloc, --threads),
the command line as a model card records it, and the notes said once a command's work starts."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from typing import Any

from playground.runtime.allocator import MALLOC_MODES
from playground.runtime.device import DEVICES
from playground.runtime.threads import AUTO as AUTO_THREADS


def number(name: str, kind: type, ok: Callable[[Any], bool], bound: str) -> Callable[[str], Any]:
    """An argparse type: a ``kind`` (int or float) value for which ``ok(value)`` holds."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, got {text}")
        return value

    return parse


def positive(name: str) -> Callable[[str], int]:
    return number(name, int, lambda v: v >= 1, "at least 1")


def positive_float(name: str) -> Callable[[str], float]:
    return number(name, float, lambda v: 0 < v < float("inf"), "a positive finite number")


def probability(name: str) -> Callable[[str], float]:
    return number(name, float, lambda v: 0 <= v <= 1, "a probability between 0 and 1")


def non_negative(name: str) -> Callable[[str], int]:
    return number(name, int, lambda v: v >= 0, "0 or more")


def add_device_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=DEVICES)


def add_data_dir_flag(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--data-dir``; ``help`` for a command that says more about it than the others."""
    p.add_argument("--data-dir", default=None, help=help)


def add_adaptation_flags(p: argparse.ArgumentParser, figure: str, several: str = "", rate_note: str = "") -> None:
    """``--inner-steps`` and ``--inner-lr``: how gradient-based learners adapt, by default as ``figure`` (which
    card figure's settings) was measured. ``several``: when more than one value each may be given, and what for."""
    nargs = "+" if several else None
    also = f"; {several}; a card written with one records it" if several else ""
    p.add_argument(
        "--inner-steps",
        type=non_negative("--inner-steps"),
        nargs=nargs,
        default=None,
        help=f"adaptation steps (gradient-based; default: those of {figure}, else the checkpoint's own){also}",
    )
    p.add_argument(
        "--inner-lr",
        type=positive_float("--inner-lr"),
        nargs=nargs,
        default=None,
        help=f"adaptation step size (gradient-based; default: as for --inner-steps, else the checkpoint's own "
        f"inner_lr{rate_note}){also}",
    )


def add_malloc_flag(p: argparse.ArgumentParser, default: str = "keep") -> None:
    """``--malloc``, for the commands (and benchmarks) that compute for minutes to hours on a CPU."""
    p.add_argument(
        "--malloc",
        choices=MALLOC_MODES,
        default=default,
        help="keep: glibc's malloc keeps freed memory for reuse instead of returning it to the OS, sparing the "
        "kernel's page faults (faster steps; memory stays at its peak; bench/README.md measures it); default: "
        "glibc's own settings. Linux only; elsewhere nothing changes (default: %(default)s)",
    )


def _thread_count(text: str) -> int | str:
    if text == AUTO_THREADS:
        return text
    return positive("--threads")(text)


def add_threads_flag(p: argparse.ArgumentParser) -> None:
    """``--threads``, for the commands that compute on a CPU."""
    p.add_argument(
        "--threads",
        type=_thread_count,
        default=AUTO_THREADS,
        metavar="N|auto",
        help="torch CPU threads; auto: the CPUs this process may use less the load of other processes (1-minute "
        "average), at least 1, or OMP_NUM_THREADS where it is set: torch's own default, a thread per core, "
        "runs several times slower on a busy machine (default: %(default)s)",
    )


def command_line(args: argparse.Namespace) -> str:
    """The command as typed (``args.argv``, which `main` sets), for a model card or a results file to record."""
    return shlex.join(["python", "-m", "playground", *args.argv])


# Notes on how a command computes (its thread count), said once its work starts: a refused command says
# only what was wrong.
_WHEN_WORK_STARTS: list[str] = []


def say_when_work_starts(note: str) -> None:
    _WHEN_WORK_STARTS.append(note)


def work_starts() -> None:
    """Say the notes kept for this moment (on stderr), once."""
    for note in _WHEN_WORK_STARTS:
        print(note, file=sys.stderr)
    _WHEN_WORK_STARTS.clear()


def forget_notes() -> None:
    """Drop the notes not said: a command that ends before its work starts leaves none for the next one."""
    _WHEN_WORK_STARTS.clear()

"""Stopping a run cleanly: a signal ends it after the iteration in progress, once last.pt holds it."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from playground.runtime import distributed


class TrainingInterrupted(KeyboardInterrupt):
    """A signal stopped training; the message says which checkpoint holds the work and how to go on."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.signum = signum


class StopSignals:
    """While active, SIGINT and SIGTERM ask training to stop after the iteration in progress, once
    last.pt holds it, instead of killing it mid-step with nothing saved. A second SIGINT (Ctrl-C
    pressed again) stops at once. Signals reach Python's handlers only in the main thread: elsewhere
    (training started from another thread) nothing changes."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                # A signal the process was started to ignore (as a shell's background job ignores SIGINT) stays so.
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        # Only a second Ctrl-C stops at once: torchrun's agent follows a Ctrl-C with its own SIGTERM to
        # every worker, which must not cut short the save the first signal asked for.
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum
            if distributed.is_main():
                # os.write, not print: the handler may run in the middle of the progress bar's own write.
                os.write(
                    2,
                    f"\n{signal.Signals(signum).name}: stopping after this iteration, once last.pt holds it "
                    "(Ctrl-C again stops at once, losing the iterations since the last checkpoint)\n".encode(),
                )

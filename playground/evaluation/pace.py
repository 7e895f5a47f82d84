"""How fast each loaded model works on this server: seconds per image pass, measured, never assumed.

The compare page turns the work of a click (image passes, `playground.evaluation.compare.WorkEstimate`) into
seconds a person can read before starting it. The cost of an image pass differs a hundredfold between
models and with how busy the server is, so it comes from what this process has measured: a timed
benchmark-shaped episode when a model is loaded (`playground.evaluation.compare.time_episode`) and every run
scored since (`playground.evaluation.compare.score_on_episodes`). A model nothing has timed has no pace, and
then no seconds are promised.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from dataclasses import dataclass, field

# Runs a model's pace is the average of. Recent ones only, so that it follows the server's load (another
# visitor's predictions, another process) rather than what it was when the model was loaded.
RECENT_RUNS = 20


@dataclass
class Pace:
    """A model's recent runs: image passes and the seconds they took."""

    runs: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=RECENT_RUNS))

    @property
    def passes(self) -> int:
        return sum(p for p, _ in self.runs)

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.runs)

    @property
    def seconds_per_pass(self) -> float | None:
        # Weighted by passes: a long run says more about the pace than a one-episode one.
        return self.seconds / self.passes if self.passes else None


# Per loaded model (by identity: the app shares one loaded model among its visitors), forgotten with it.
_PACES: weakref.WeakKeyDictionary[object, Pace] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()  # every visitor's session records into the same table


def record(model: object, passes: int, seconds: float) -> None:
    """``model`` computed ``passes`` image passes in ``seconds``."""
    if passes <= 0 or seconds < 0:
        return
    with _LOCK:
        _PACES.setdefault(model, Pace()).runs.append((passes, seconds))


def measured(model: object) -> Pace | None:
    """What has been measured of ``model`` (None if nothing yet)."""
    with _LOCK:
        pace = _PACES.get(model)
        return None if pace is None else Pace(deque(pace.runs, maxlen=RECENT_RUNS))


def seconds_per_pass(model: object) -> float | None:
    """``model``'s measured seconds per image pass; None until something has been timed."""
    pace = measured(model)
    return None if pace is None else pace.seconds_per_pass


def about(seconds: float) -> str:
    """``seconds`` as a person says a wait: "about 25 s", "about 1.5 minutes", "about 14 minutes"."""
    if seconds < 1:
        return "under a second"
    if seconds < 10:
        return f"about {round(seconds)} s"
    if seconds < 57.5:  # to the nearest 5 s: a finer figure would promise more than a measured pace can
        return f"about {5 * round(seconds / 5)} s"
    minutes = seconds / 60
    if minutes < 10:
        half = round(2 * minutes) / 2
        return "about 1 minute" if half == 1 else f"about {half:g} minutes"
    if minutes < 90:
        return f"about {round(minutes)} minutes"
    return f"about {round(minutes / 60):g} hours"

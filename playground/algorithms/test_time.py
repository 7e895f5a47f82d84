"""The test-time settings a model was chosen with, per task size: part of the model as loaded.

A gradient-based model's card records, beside each figure, the inner steps and step size it was
measured with (`calibrate-steps` chose them on validation, per task size). A model loaded with its
card carries them as a `TestTimeSettings`, and `MetaLearner.adapt` uses them wherever its caller
leaves a setting unset: every page, command and library caller then gets the card's behaviour
without passing anything, and anything passed still wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from playground.zoo.card import LakeRuns, ModelCard, Result

Settings = dict[str, float]


def recorded_settings(figure: Result | LakeRuns) -> Settings:
    """The `adapt` keywords a card's figure records beside it (``inner_steps`` -> ``n_steps``, ``inner_lr``);
    those it does not record were the checkpoint's own, so they are left out."""
    settings: Settings = {}
    if figure.inner_steps is not None:
        settings["n_steps"] = int(figure.inner_steps)
    if figure.inner_lr is not None:
        settings["inner_lr"] = float(figure.inner_lr)
    return settings


@dataclass(frozen=True)
class TestTimeSettings:
    """Settings per (ways, shots) from a card's figures, and those of its Lake's-runs figure."""

    __test__ = False  # a library class, not a pytest test class

    cells: tuple[tuple[int, int, tuple[tuple[str, float], ...]], ...] = ()
    lake_runs: tuple[tuple[str, float], ...] | None = None  # None: the card has no Lake figure

    @classmethod
    def from_card(cls, card: ModelCard | Mapping[str, Any] | None) -> TestTimeSettings:
        """Read from a model card (none, or a card without figures, gives no settings)."""
        card = ModelCard.of(card) or ModelCard()
        cells = tuple(
            (int(r.n_way), int(r.k_shot), tuple(recorded_settings(r).items()))
            for r in card.results()
            if (r.n_way or 0) > 0 and (r.k_shot or 0) > 0
        )
        lake = card.lake_runs
        return cls(cells, tuple(recorded_settings(lake).items()) if lake and lake.error is not None else None)

    def nearest(self, n_way: int, k_shot: int) -> Settings:
        """The settings of the figure nearest ``n_way``-way ``k_shot``-shot: nearest in ways first (they
        change the task most), then in shots, both on a log scale. Empty when there are none."""
        if not self.cells:
            return {}
        n_way, k_shot = max(1, n_way), max(1, k_shot)
        _, _, settings = min(self.cells, key=lambda c: (abs(math.log(c[0] / n_way)), abs(math.log(c[1] / k_shot))))
        return dict(settings)

    def for_lake_runs(self) -> Settings | None:
        """The settings the card's figure on Lake's 20 runs was measured with (a setting it does not record
        was the learner's own); None when the card has no such figure."""
        return None if self.lake_runs is None else dict(self.lake_runs)

    def __bool__(self) -> bool:
        """Whether any figure records a setting: otherwise the learner adapts with its own, card or not."""
        return any(settings for *_, settings in self.cells) or bool(self.lake_runs)

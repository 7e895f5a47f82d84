"""Beat the human: models' and a person's picks on Lake's 20 one-shot runs, side by side (no Streamlit here)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from playground.algorithms import MetaLearner
from playground.algorithms.test_time import recorded_settings
from playground.data.download import LAKE_RUNS_FILE, file_url
from playground.data.omniglot import default_data_dir
from playground.evaluation.few_shot import confidence_interval_95
from playground.figures.explorer import image_uri
from playground.interactive.imaging import from_tensor
from playground.lake.runs import (  # noqa: F401 (pages use error_percent from here)
    HUMAN_ERROR,
    RUNS,
    LakeResult,
    LakeRun,
    error_percent,
    lake_settings,
)
from playground.zoo.card import ModelCard

PEOPLE = "people (Lake et al. 2015)"


# -- the data --------------------------------------------------------------------------


def lake_runs_file(data_dir: str | Path | None = None) -> Path:
    """Where Lake's runs are looked for: ``<data-dir>/all_runs.zip``."""
    return Path(data_dir if data_dir is not None else default_data_dir()) / "all_runs.zip"


def lake_runs_available(data_dir: str | Path | None = None) -> bool:
    """True when ``all_runs.zip`` (or its extracted ``run01``.. folders) is in the data folder."""
    folder = lake_runs_file(data_dir).parent
    return lake_runs_file(data_dir).is_file() or (folder / "run01").is_dir()


def missing_runs_message(data_dir: str | Path | None = None) -> str:
    """What to tell a person when the runs are absent: the file and how to get it."""
    path = lake_runs_file(data_dir)
    return (
        f"Lake's 20 one-shot runs are not installed: {path} is missing. `python -m playground download` "
        f"fetches all_runs.zip from {file_url(LAKE_RUNS_FILE)} into {path.parent} (or point $PLAYGROUND_DATA "
        "at a folder holding it)."
    )


def glyph_images(x: torch.Tensor) -> np.ndarray:
    """[n, 1, 28, 28] ink = 1 floats -> [n, 28, 28] uint8 with ink = 255, for display."""
    return np.stack(from_tensor(x))


def run_images(run: LakeRun) -> tuple[np.ndarray, np.ndarray]:
    """A run's 20 training glyphs (class i is row i) and its 20 test items, as uint8 ink = 255."""
    return glyph_images(run.train_x), glyph_images(run.test_x)


def run_glyph_uris(run: LakeRun) -> tuple[list[str], list[str]]:
    """A run's training glyphs and test items as PNG data URIs (dark ink on white), in `run_images`' order.

    A data URI can go where only text can: a button's label, a table cell.
    """
    train, test = run_images(run)
    return [image_uri(a) for a in train], [image_uri(a) for a in test]


# -- the models' picks -----------------------------------------------------------------


@dataclass
class RunPicks:
    """One model's answer to each test item of one run, and how sure it was."""

    picks: list[int]  # index of the chosen training glyph, per test item
    confidence: list[float]  # the model's probability of its pick
    truth: list[int]

    @property
    def right(self) -> list[bool]:
        return [p == t for p, t in zip(self.picks, self.truth)]

    @property
    def error(self) -> float:
        return 1 - sum(self.right) / len(self.truth)


@dataclass
class LakeMeasurement:
    """A model measured now on all runs: per-run picks, so per-run errors and their spread."""

    model: str
    runs: list[RunPicks]
    device: str
    seconds: float

    @property
    def run_errors(self) -> list[float]:
        return [r.error for r in self.runs]

    @property
    def error(self) -> float:
        return float(np.mean(self.run_errors))

    @property
    def ci95(self) -> float:
        return confidence_interval_95(self.run_errors)

    def as_lake_result(self) -> LakeResult:
        """The same numbers in the shape `evaluate_lake_runs` returns."""
        return LakeResult(self.run_errors, [r.picks for r in self.runs])


def run_picks(learner: MetaLearner, run: LakeRun, settings: Mapping[str, float] | None = None) -> RunPicks:
    """Adapt to the run's 20 training glyphs and pick one for each test item, as `evaluate_lake_runs` does.

    ``settings``: ``n_steps`` and ``inner_lr`` to use; those left out are the ones the model card's Lake figure
    was measured with (`lake_settings`), as on the command line.
    """
    device = learner.device
    labels = torch.arange(len(run.train_x), device=device)
    given = settings or {}
    chosen = lake_settings(learner, given.get("n_steps"), given.get("inner_lr"))
    predictor = learner.adapt(run.train_x.to(device), labels, **chosen)
    with torch.no_grad():
        # One forward pass gives both: the pick is the logits' argmax, exactly what `predict` returns.
        logits = predictor.logits(run.test_x.to(device)).float().cpu()
    proba = logits.softmax(-1)
    picks = logits.argmax(-1)
    return RunPicks(picks.tolist(), proba.gather(1, picks[:, None]).squeeze(1).tolist(), run.test_y.tolist())


def measure_model(
    name: str,
    learner: MetaLearner,
    runs: list[LakeRun],
    settings: Mapping[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LakeMeasurement:
    """Every run's picks for one model (with ``settings``, as `run_picks`); ``progress(done, total)`` after each."""
    start = time.perf_counter()
    results = []
    for i, run in enumerate(runs):
        results.append(run_picks(learner, run, settings))
        if progress is not None:
            progress(i + 1, len(runs))
    return LakeMeasurement(name, results, str(learner.device), time.perf_counter() - start)


# -- the overview: errors from the cards, or measured now ------------------------------


@dataclass
class LakeScore:
    """One bar of the overview: a model's (or a person's) error on Lake's runs, and where it comes from."""

    name: str
    error: float | None  # None: never measured
    ci95: float | None  # over the runs' errors, when they are known
    source: str  # "model card", "measured now on cpu", "you", "not measured"
    runs: int = RUNS

    @property
    def times_people(self) -> float | None:
        """How many times people's 4.5% error this is."""
        return None if self.error is None else self.error / HUMAN_ERROR

    @property
    def against_people(self) -> str | None:
        """ "below", "level with" or "above" people's 4.5% error (None: never measured)."""
        if self.error is None:
            return None
        return "below" if self.error < HUMAN_ERROR else "level with" if self.error == HUMAN_ERROR else "above"


def card_lake_settings(card: ModelCard | Mapping[str, Any] | None) -> dict[str, float]:
    """The test-time settings a card's Lake figure was measured with where not the checkpoint's own:
    ``n_steps`` and ``inner_lr``, each only when the card records it (empty: the checkpoint's own).

    They were chosen on validation runs (`lake-runs --validation`), so measuring now with them repeats the
    card's figure.
    """
    card = ModelCard.of(card)
    return recorded_settings(card.lake_runs) if card and card.lake_runs else {}


def describe_settings(settings: Mapping[str, float]) -> str:
    """ "30 inner steps of 0.1", "1 inner step", "inner step size 0.1" or "" (the checkpoint's own)."""
    steps, lr = settings.get("n_steps"), settings.get("inner_lr")
    if steps is None:
        return "" if lr is None else f"inner step size {lr:g}"
    count = f"{int(steps)} inner step{'' if steps == 1 else 's'}"
    return count if lr is None else f"{count} of {lr:g}"


def card_score(name: str, card: ModelCard | Mapping[str, Any] | None) -> LakeScore:
    """The Lake error a model card already holds (free: nothing is run)."""
    card = ModelCard.of(card)
    lake = card.lake_runs if card else None
    if lake is None or lake.error is None:
        return LakeScore(name, None, None, "not measured")
    error, run_errors = lake.error, lake.run_errors or []
    ci = confidence_interval_95([float(e) for e in run_errors]) if len(run_errors) > 1 else None
    setting = describe_settings(card_lake_settings(card))
    source = "model card" + (f" ({setting})" if setting else "")
    return LakeScore(name, float(error), ci, source, len(run_errors) or RUNS)


def measured_score(m: LakeMeasurement) -> LakeScore:
    """A live measurement as an overview bar."""
    return LakeScore(m.model, m.error, m.ci95, f"measured now on {m.device}", len(m.runs))


def overview_scores(
    cards: Mapping[str, ModelCard | Mapping[str, Any] | None], measured: Mapping[str, LakeMeasurement] | None = None
) -> list[LakeScore]:
    """Per model (in ``cards``' order): the live measurement when there is one, else the card's figure."""
    measured = measured or {}
    return [measured_score(measured[n]) if n in measured else card_score(n, c) for n, c in cards.items()]


def best_card_score(cards: Mapping[str, ModelCard | Mapping[str, Any] | None]) -> LakeScore | None:
    """The lowest Lake error any card holds (the first such model on a tie); None when no card has one."""
    scores = [s for s in (card_score(n, c) for n, c in cards.items()) if s.error is not None]
    return min(scores, key=lambda s: s.error) if scores else None


def people_score() -> LakeScore:
    """People's error in Lake et al. 2015, as a row beside the models."""
    return LakeScore(PEOPLE, HUMAN_ERROR, None, "Lake et al. 2015")


# -- a person's attempt ----------------------------------------------------------------


@dataclass
class HumanAttempt:
    """A person's picks on one run's test items (None: not answered), scored against the answer key."""

    picks: list[int | None]
    truth: list[int]

    def __post_init__(self) -> None:
        if len(self.picks) != len(self.truth):
            raise ValueError(f"{len(self.picks)} picks for {len(self.truth)} test items")
        n = len(self.truth)
        for i, p in enumerate(self.picks):
            if p is not None and not (isinstance(p, int | np.integer) and 0 <= p < n):
                raise ValueError(f"item {i + 1}: pick {p!r} is not a training glyph 0..{n - 1}")

    @property
    def right(self) -> list[bool | None]:
        """Per item: True / False, or None where the person gave no answer."""
        return [None if p is None else p == t for p, t in zip(self.picks, self.truth)]

    @property
    def answered(self) -> int:
        return sum(p is not None for p in self.picks)

    @property
    def unanswered(self) -> int:
        return len(self.picks) - self.answered

    @property
    def correct(self) -> int:
        return sum(r is True for r in self.right)

    @property
    def errors(self) -> int:
        """Wrong answers; unanswered items are not counted as errors."""
        return sum(r is False for r in self.right)

    @property
    def error_rate(self) -> float | None:
        """Errors over the answered items; None when nothing is answered yet."""
        return None if self.answered == 0 else self.errors / self.answered

    @property
    def complete(self) -> bool:
        return self.unanswered == 0

    def score(self) -> LakeScore:
        """The person's error on this run as a bar beside the models'."""
        return LakeScore("you", self.error_rate, None, "you", 1)


def score_attempt(run: LakeRun, picks: list[int | None]) -> HumanAttempt:
    """Score a person's picks (one per test item, None where unanswered) on one run."""
    return HumanAttempt([None if p is None else int(p) for p in picks], run.test_y.tolist())


@dataclass
class Comparison:
    """A person against one model on the same run: the model's error and who was right where."""

    model: str
    run_error: float  # the model's error on all the run's items
    error_on_answered: float | None  # the model's error on just the items the person answered
    agreement: float | None  # share of the answered items where both picked the same glyph
    both_right: int
    only_you_right: int
    only_model_right: int
    both_wrong: int

    def row(self) -> dict[str, Any]:
        """A table row (percentages as numbers 0..100)."""
        pct = lambda v: None if v is None else round(100 * v, 1)
        return {
            "model": self.model,
            "error on the run (%)": pct(self.run_error),
            "error on your items (%)": pct(self.error_on_answered),
            "agrees with you (%)": pct(self.agreement),
            "both right": self.both_right,
            "only you right": self.only_you_right,
            "only model right": self.only_model_right,
            "both wrong": self.both_wrong,
        }


def compare(attempt: HumanAttempt, models: Mapping[str, RunPicks]) -> list[Comparison]:
    """One `Comparison` per model, counted over the items the person answered."""
    rows = []
    for name, mp in models.items():
        if mp.truth != attempt.truth:
            raise ValueError(f"{name}'s picks are for another run")
        answered = [i for i, p in enumerate(attempt.picks) if p is not None]
        you = [attempt.picks[i] == attempt.truth[i] for i in answered]
        it = [mp.right[i] for i in answered]
        n = len(answered)
        rows.append(
            Comparison(
                model=name,
                run_error=mp.error,
                error_on_answered=None if n == 0 else 1 - sum(it) / n,
                agreement=None if n == 0 else sum(attempt.picks[i] == mp.picks[i] for i in answered) / n,
                both_right=sum(a and b for a, b in zip(you, it)),
                only_you_right=sum(a and not b for a, b in zip(you, it)),
                only_model_right=sum(b and not a for a, b in zip(you, it)),
                both_wrong=sum(not a and not b for a, b in zip(you, it)),
            )
        )
    return rows


DRAWING = "drawing"  # the item-by-item table's image columns: the test drawing, the right training glyph
RIGHT_GLYPH = "right glyph"


def pick_column(who: str) -> str:
    """The item-by-item table's image column of one player's picks: "your pick", "pixel_nn's pick"."""
    return "your pick" if who == "you" else f"{who}'s pick"


def item_image_columns(models: Sequence[str]) -> list[str]:
    """The columns of `item_rows` (given glyphs) that hold images, in the table's order."""
    return [DRAWING, RIGHT_GLYPH, pick_column("you")] + [pick_column(m) for m in models]


def _mark(pick: int | None, truth: int) -> str:
    return "—" if pick is None else f"{pick + 1} {'✅' if pick == truth else '❌'}"


def item_rows(
    attempt: HumanAttempt,
    models: Mapping[str, RunPicks],
    glyphs: tuple[Sequence[str], Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Per test item: the right glyph, the person's pick and each model's, numbered 1..20 with ✅/❌.

    With ``glyphs`` (`run_glyph_uris`: training glyphs, test items) each number comes with its picture, in
    the `item_image_columns`: the drawing, the right glyph, and each pick beside its mark (none unanswered).
    Seeing the glyphs side by side shows *why* a pick went wrong: which look-alike it was taken for.
    """
    train, test = glyphs if glyphs is not None else (None, None)
    rows = []
    for i, truth in enumerate(attempt.truth):
        row: dict[str, Any] = {"item": i + 1}
        if test is not None:
            row[DRAWING] = test[i]
            row[RIGHT_GLYPH] = train[truth]
        row["answer"] = truth + 1
        picks = {"you": attempt.picks[i]} | {name: mp.picks[i] for name, mp in models.items()}
        for who, p in picks.items():
            if train is not None:
                row[pick_column(who)] = None if p is None else train[p]
            row[who] = _mark(p, truth)
            if who in models:
                row[who] += f" ({100 * models[who].confidence[i]:.0f}%)"
        rows.append(row)
    return rows

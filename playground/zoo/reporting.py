"""Measured figures into model cards, and model cards into the README's results table.

`record_results` and `record_lake_runs` write what ``evaluate --card`` and ``lake-runs --card`` measured
into the card beside a checkpoint (made from the checkpoint where it has none yet). `results_table` is the
Markdown table ``report`` prints and ``report --readme`` puts into the README (`playground.zoo.readme_table`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from playground.evaluation.few_shot import EvalResult
from playground.lake.runs import HUMAN_ERROR, LakeResult
from playground.training import hardware_description, make_card
from playground.zoo.card import LakeRuns, ModelCard, Result, TrainingRecord
from playground.zoo.checkpoints import read_card, write_card
from playground.zoo.papers import SETTINGS, published_for, reaches

if TYPE_CHECKING:
    from playground.zoo.shipped import ModelEntry


def evaluation_result(
    res: EvalResult, *, protocol: str, split: str, seed: int, settings: Mapping[str, float], command: str
) -> Result:
    """``res`` as a card's figure: where it was measured, the settings it adapted with (``settings``, as
    `MetaLearner.settings_for` gives them; none: the learner's own) and the command that measured it."""
    return replace(
        Result.from_dict(res.as_dict()),
        protocol=protocol,
        split=split,
        seed=seed,
        inner_steps=settings.get("n_steps"),
        inner_lr=settings.get("inner_lr"),
        # each figure keeps the command that measured it: cards gather figures from several runs
        command=command,
    )


def _card_of(checkpoint: str | Path, device: torch.device) -> ModelCard:
    """The checkpoint's card, or a fresh one made from the checkpoint."""
    return read_card(checkpoint) or make_card(Path(checkpoint), [], device)


def record_results(
    checkpoint: str | Path, results: Iterable[Result], device: torch.device, other_queries: bool = False
) -> Path:
    """Write ``results`` into the checkpoint's model card, replacing earlier figures for the same settings.

    ``other_queries``: figures measured with another number of queries per class than the
    standard one (such as a paper's own, `Published.queries`), kept beside the standard ones.
    """
    card = _card_of(checkpoint, device)
    return write_card(checkpoint, card.with_results(results, hardware_description(device), other_queries))


def record_lake_runs(
    checkpoint: str | Path, res: LakeResult, settings: Mapping[str, float], command: str, device: torch.device
) -> Path:
    """Write the error on Lake's runs into the checkpoint's model card, in place of any earlier one;
    ``settings`` are those it adapted with (`lake_settings`; none: the learner's own)."""
    lake = LakeRuns(
        error=round(res.error, 4),
        run_errors=res.run_errors,
        human_error=HUMAN_ERROR,
        command=command,
        inner_steps=settings.get("n_steps"),
        inner_lr=settings.get("inner_lr"),
    )
    return write_card(checkpoint, replace(_card_of(checkpoint, device), lake_runs=lake))


def setting_text(steps: int | None, lr: float | None) -> str:
    """ " (20 steps of 0.025)", " (step size 0.1)", " (30 steps)" or "" (the checkpoint's own steps and rate)."""
    if lr is not None:
        return f" (step size {lr:g})" if steps is None else f" ({_step_count(steps)} of {lr:g})"
    return "" if steps is None else f" ({_step_count(steps)})"


def queries_text(n: int) -> str:
    """ "1 query per class", "5 queries per class"."""
    return f"{n} {'query' if n == 1 else 'queries'} per class"


def _step_count(steps: int) -> str:
    return f"{steps} step{'' if steps == 1 else 's'}"


def _percent(fraction: float) -> str:
    """One decimal, halves rounded up: a card's 0.0625 (25 errors of 400) reads 6.3%, as `lake-runs` printed it."""
    return f"{Decimal(str(100 * fraction)).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


def _cell(result: Result | None) -> str:
    """A card result as a table cell; inner steps or a step size other than the checkpoint's own are named."""
    if result is None:
        return "–"
    return result.text + setting_text(result.inner_steps, result.inner_lr)


def _budget(training: TrainingRecord) -> str:
    """A card's training budget as a cell; a fine-tuned model's counts its base's too ("4000 + 100 it")."""
    base = training.base
    its = f"{'?' if training.iterations is None else training.iterations} it"
    seconds = training.seconds or 0
    if base:
        its = f"{base['iterations']} + {its} (fine-tuned from {base['algorithm']})"
        seconds += base["seconds"]
    return f"{its}, {seconds / 60:.0f} min"


STYLE_SETTING = (5, 1)  # the style-shift figure the results table shows (cards hold 5x1, 5x5 and 20x1)


def results_table(entries: Iterable[ModelEntry], papers: bool = False) -> str:
    """Markdown: one row per model, 5/20-way x 1/5-shot accuracy with CI, Lake's runs, and the style shift.

    With ``papers``, each `vinyals` model with published figures (`playground.zoo.papers`) is followed by a row of
    them, each marked "reached" (our mean above it, or it within our 95% CI) or by how far short we are.
    The Lake column is left out when no card has Lake's runs (a `vinyals` model must not be run on them), the
    style-shift column (the benchmark's mixed row: docs/style_shift.md) when no card has the figure.
    """
    entries = list(entries)
    cards = [e.card or ModelCard() for e in entries]
    lake_column = any(card.lake_runs is not None for card in cards)
    style_column = any(card.style_shift is not None for card in cards)
    head = "| model | " + " | ".join(f"{n}-way {k}-shot" for n, k in SETTINGS)
    head += " | Lake's 20 runs (error)" * lake_column
    head += f" | style shift ({STYLE_SETTING[0]}-way {STYLE_SETTING[1]}-shot)" * style_column + " | training |"
    lines = [head, "|" + " --- |" * (len(SETTINGS) + 2 + lake_column + style_column)]
    for e, card in zip(entries, cards):
        measured = {(r.n_way, r.k_shot): r for r in card.results()}
        cells = [_cell(measured.get(setting)) for setting in SETTINGS]
        if lake_column:
            lake = card.lake_runs or LakeRuns()
            setting = setting_text(lake.inner_steps, lake.inner_lr)
            cells.append("–" if lake.error is None else _percent(lake.error) + setting)
        if style_column:
            cells.append(_cell(card.style_shift.result(*STYLE_SETTING) if card.style_shift else None))
        cells.append(_budget(card.training))
        lines.append(f"| `{e.name}` | " + " | ".join(cells) + " |")
        # The papers' figures are on the vinyals split; beside a lake model they would mislead.
        paper = published_for(card) if papers and card.protocol == "vinyals" else None
        if paper is None:
            continue
        others = {(r.n_way, r.k_shot, r.n_query): r for r in card.evaluation.other_queries}
        cells = []
        for n, k in SETTINGS:
            figure, ours = paper.figure(n, k), measured.get((n, k))
            if ours is None:
                cells.append(f"{figure}")
                continue
            cell = f"{figure} ({_against(ours, figure)}"
            # Measured as the authors tested too (their queries per class), where that differs from ours.
            theirs = others.get((n, k, paper.queries_for(n, k)))
            if theirs is not None:
                setting = setting_text(theirs.inner_steps, theirs.inner_lr)
                if setting == setting_text(ours.inner_steps, ours.inner_lr):
                    setting = ""
                cell += f"; at its {queries_text(theirs.n_query)}: {theirs.text}{setting}, {_against(theirs, figure)}"
            cells.append(cell + ")")
        cells += ["–"] * (lake_column + style_column) + ["published"]
        lines.append(f"| ↳ {paper.source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _against(ours: Result, figure: float) -> str:
    """ "reached" (our mean above the figure, or it within our 95% CI) or "short by 0.4"."""
    if reaches(100 * ours.accuracy, 100 * ours.ci95, figure):
        return "reached"
    return f"short by {figure - 100 * ours.accuracy:.1f}"


__all__ = ["evaluation_result", "queries_text", "record_lake_runs", "record_results", "results_table", "setting_text"]

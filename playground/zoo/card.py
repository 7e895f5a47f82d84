"""The model card beside a checkpoint (``name.json`` beside ``name.pt``), as a typed object.

A card records how a model was trained and what it measured: its config, protocol and dataset, the training
record, the test figures (`Result`, or `SineResult` on the sine-wave card), its error on Lake's 20 runs, and
its accuracy on style-shifted drawings (`StyleShift`).
Every reader and writer goes through `ModelCard`, so that the card's JSON keys are known here only.

Cards outlive the code that wrote them, so reading is lenient and writing is faithful: a missing section
reads as its empty default, a key this version does not name is kept in ``extra``, and a card read and
saved back is byte for byte the file it was (its keys in their order; a key it did not have is written only
once it holds something).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="_Record")


@dataclass(frozen=True)
class _Record:
    """A JSON object with named fields: unknown keys go to ``extra``, the key order read is the order written."""

    # Fields holding a nested record, or a list of records ({name: parser of one item}).
    _nested: ClassVar[dict[str, Any]] = {}
    _rows: ClassVar[dict[str, Any]] = {}
    # Fields written even while they hold their default (a fresh card's empty results list).
    _always: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def _names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "keys_read")]

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """Read from the card's JSON object; keys it lacks take their defaults, unknown ones go to ``extra``."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a model card's {cls.__name__} must be a JSON object, not {type(data).__name__}")
        names = cls._names()
        values: dict[str, Any] = {}
        for name in names:
            if name not in data:
                continue
            value = data[name]
            if name in cls._nested and value is not None:
                value = cls._nested[name].from_dict(value)
            elif name in cls._rows and value is not None:
                if not isinstance(value, list):
                    raise ValueError(f"a model card's {name} must be a JSON list, not {type(value).__name__}")
                value = tuple(cls._rows[name](row) for row in value)
            values[name] = value
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**values, extra=extra, keys_read=tuple(data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the keys read, in their order, then fields holding something new, then new extras."""
        defaults = {f.name: f for f in dataclasses.fields(self)}
        out: dict[str, Any] = {}
        for key in self.keys_read:
            if key in defaults and key not in ("extra", "keys_read"):
                out[key] = _plain(getattr(self, key))
            elif key in self.extra:
                out[key] = self.extra[key]
        for name in self._names():
            if name in out:
                continue
            value, f = getattr(self, name), defaults[name]
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if value != default or name in self._always:
                out[name] = _plain(value)
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out


def _plain(value: Any) -> Any:
    """A field's value as JSON: records as objects, tuples of records as lists."""
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Result(_Record):
    """One measured setting: accuracy with its 95% CI over test episodes, and how it was measured."""

    n_way: int | None = None
    k_shot: int | None = None
    n_query: int | None = None  # given only where it is not the standard count (``other_queries``)
    episodes: int | None = None
    accuracy: float | None = None
    ci95: float | None = None
    text: str | None = None  # "98.5 ± 0.2 %"
    protocol: str | None = None
    split: str | None = None
    seed: int | None = None
    inner_steps: int | None = None  # None: the checkpoint's own test-time steps
    inner_lr: float | None = None  # None: the checkpoint's own step size
    command: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    keys_read: tuple[str, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class SineResult(_Record):
    """One measured setting of the sine-wave regressors: MSE over test tasks after ``steps`` steps of ``lr``."""

    method: str = ""
    k_shot: int | None = None
    steps: int | None = None
    lr: float | None = None
    tasks: int | None = None
    seed: int | None = None
    mse: float | None = None
    ci95: float | None = None
    median: float | None = None
    text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    keys_read: tuple[str, ...] = field(default=(), repr=False, compare=False)


def _row(data: Mapping[str, Any]) -> Result | SineResult:
    """A result row: a sine-wave one names its method, a classification one its ways."""
    return SineResult.from_dict(data) if "method" in data and "n_way" not in data else Result.from_dict(data)


@dataclass(frozen=True)
class Evaluation(_Record):
    """The test figures: the standard query count's in ``results``, others' in ``other_queries``."""

    _rows: ClassVar[dict[str, Any]] = {"results": _row, "other_queries": Result.from_dict}
    _always: ClassVar[frozenset[str]] = frozenset({"results"})

    split: str | None = None
    device: str | None = None  # the hardware of the latest measurement
    results: tuple[Result | SineResult, ...] = ()
    other_queries: tuple[Result, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    keys_read: tuple[str, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class TrainingRecord(_Record):
    """How the weights were made: budget, hardware, command, and the model fine-tuned from (``base``)."""

    iterations: int | None = None
    best_iteration: int | None = None
    best_val_accuracy: float | None = None
    seconds: float | None = None
    base: dict[str, Any] | None = None  # the record of the checkpoint it was fine-tuned from, its own base inside
    train_config: dict[str, Any] | None = None
    hardware: str | None = None
    command: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    keys_read: tuple[str, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class LakeRuns(_Record):
    """The error on Lake et al.'s 20 one-shot runs, people's beside it, and the settings it adapted with."""

    error: float | None = None
    run_errors: list[float] = field(default_factory=list)
    human_error: float | None = None
    command: str | None = None
    inner_steps: int | None = None
    inner_lr: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    keys_read: tuple[str, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class StyleShift(_Record):
    """The style-shift benchmark's figures (docs/style_shift.md): accuracy on drawings under ``row``'s shifts."""

    _rows: ClassVar[dict[str, Any]] = {"results": Result.from_dict}

    row: str = ""  # "mixed": each image its own combination of one to three shifts
    n_query: int | None = None
    seed: int | None = None
    command: str | None = None
    results: tuple[Result, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    keys_read: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def result(self, n_way: int, k_shot: int) -> Result | None:
        """The figure for ``n_way``-way ``k_shot``-shot, or None if it has none."""
        return next((r for r in self.results if (r.n_way, r.k_shot) == (n_way, k_shot)), None)


@dataclass(frozen=True)
class ModelCard(_Record):
    """A checkpoint's model card. `load`/`save` read and write it beside the checkpoint's file."""

    _nested: ClassVar[dict[str, Any]] = {
        "training": TrainingRecord,
        "evaluation": Evaluation,
        "lake_runs": LakeRuns,
        "style_shift": StyleShift,
    }

    algorithm: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None  # None: Omniglot (cards older than the record)
    protocol: str | None = None
    training: TrainingRecord = field(default_factory=TrainingRecord)
    evaluation: Evaluation = field(default_factory=Evaluation)
    torch: str | None = None
    note: str | None = None
    lake_runs: LakeRuns | None = None  # None: never run on Lake's runs
    style_shift: StyleShift | None = None  # None: never run on the style-shift benchmark
    extra: dict[str, Any] = field(default_factory=dict)
    keys_read: tuple[str, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def of(cls, card: ModelCard | Mapping[str, Any] | None) -> ModelCard | None:
        """``card`` as a `ModelCard` (a JSON object is read with `from_dict`); None stays None."""
        return card if card is None or isinstance(card, ModelCard) else cls.from_dict(card)

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        """The card in the JSON file ``path``; raises OSError or ValueError when it is missing or not a card."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file, then rename): a reader never sees half a card."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp")
        tmp.write_text(self.dumps())
        os.replace(tmp, p)
        return p

    def dumps(self) -> str:
        """The file's text: indented JSON and a final newline."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @property
    def trained_on(self) -> str:
        """The dataset the model was trained on (`playground.data.datasets`); cards without one: Omniglot."""
        return self.dataset or "omniglot"

    def result(self, n_way: int, k_shot: int) -> Result | None:
        """The figure for ``n_way``-way ``k_shot``-shot at the standard query count, or None if it has none."""
        return next((r for r in self.results() if (r.n_way, r.k_shot) == (n_way, k_shot)), None)

    def results(self) -> list[Result]:
        """The classification figures at the standard query count (none on the sine-wave card)."""
        return [r for r in self.evaluation.results if isinstance(r, Result)]

    def with_evaluation(self, **changes: Any) -> ModelCard:
        """A copy whose evaluation has ``changes`` (field=value)."""
        return replace(self, evaluation=replace(self.evaluation, **changes))

    def with_results(self, results: Iterable[Result], device: str, other_queries: bool = False) -> ModelCard:
        """A copy holding ``results``, each replacing the figure for the same ways, shots and protocol (and
        queries, for ``other_queries``: figures at another query count than the standard one), measured on
        ``device``."""
        results = list(results)

        def setting(r: Result) -> tuple:
            return r.n_way, r.k_shot, r.protocol, r.n_query if other_queries else None

        new = {setting(r) for r in results}
        earlier = self.evaluation.other_queries if other_queries else self.evaluation.results
        kept = [r for r in earlier if setting(r) not in new]
        rows = tuple(sorted(kept + results, key=lambda r: (r.n_way, r.k_shot, r.n_query or 0)))
        return self.with_evaluation(device=device, **{"other_queries" if other_queries else "results": rows})


__all__ = ["Evaluation", "LakeRuns", "ModelCard", "Result", "SineResult", "StyleShift", "TrainingRecord"]

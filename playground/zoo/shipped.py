"""The shipped pretrained models: find them, read their cards, load them once."""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from playground.algorithms import MetaLearner, learner_class
from playground.algorithms.test_time import TestTimeSettings
from playground.evaluation.compare import time_episode
from playground.zoo.card import ModelCard, Result
from playground.zoo.checkpoints import load_learner, read_card

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "assets" / "checkpoints"
# Folders of a person's own checkpoints (os.pathsep-separated) served beside the shipped ones, so that a model
# of their own, a plugin algorithm's included, appears in the app without being copied into the project.
EXTRA_DIRS_ENV = "PLAYGROUND_CHECKPOINTS"


@dataclass
class ModelEntry:
    name: str  # file stem, e.g. "protonet_lake"
    path: Path
    card: ModelCard | None

    def __post_init__(self) -> None:
        self.card = ModelCard.of(self.card)  # a card given as its JSON object is read as one

    @property
    def algorithm(self) -> str:
        return self.card.algorithm if self.card and self.card.algorithm else self.name.split("_")[0]

    @property
    def title(self) -> str:
        """The short name people know the algorithm by ("ProtoNet"); the file's name when it has none."""
        try:
            return learner_class(self.algorithm).title or self.name
        except ValueError:  # a plugin's model whose module is not loaded: its file name still says what it is
            return self.name

    @property
    def dataset(self) -> str:
        """The dataset it was trained on, from its card (`playground.data.datasets`); cards without one: Omniglot."""
        return (self.card or ModelCard()).trained_on

    def figure(self, n_way: int = 5, k_shot: int = 1) -> Result | None:
        """The card's result for n_way/k_shot (accuracy, ci95, text, settings), or None if it has none."""
        return self.card.result(n_way, k_shot) if self.card else None

    def headline(self, n_way: int = 5, k_shot: int = 1) -> str | None:
        """The card's measured accuracy for n_way/k_shot, e.g. "97.9 ± 0.5 %" (None if absent)."""
        figure = self.figure(n_way, k_shot)
        return None if figure is None else figure.text

    @functools.cached_property
    def test_time(self) -> TestTimeSettings:
        """The card's settings per task size, read once (the pages ask on every run)."""
        return TestTimeSettings.from_card(self.card)

    def adapt_defaults(self, n_way: int, k_shot: int) -> dict[str, float]:
        """The test-time settings the card's figure nearest n_way/k_shot was measured with (see `TestTimeSettings`):
        what a model loaded with this card adapts with when its caller passes none."""
        return self.test_time.nearest(n_way, k_shot)

    def load(self, device: torch.device | str = "cpu", warm: bool = True) -> MetaLearner:
        learner = load_learner(self.path, device)
        if warm:
            warm_up(learner)
        return learner


@dataclass
class SessionModel(ModelEntry):
    """A model a person trained in the app (the live page): listed beside the shipped ones, for them only."""

    label: str = ""
    learner: MetaLearner | None = None

    @property
    def title(self) -> str:
        return self.label

    def load(self, device: torch.device | str = "cpu", warm: bool = True) -> MetaLearner:
        if self.learner is None:
            raise ValueError(f"{self.label} holds no model")
        return self.learner.to(device)


def warm_up(learner: MetaLearner) -> None:
    """One tiny adaptation, so the first user's click does not pay torch's one-off set-up costs; then one
    benchmark-shaped episode, timed, so that the app can say how long a benchmark will take before it starts."""
    x = torch.rand(4, *learner.image_shape, device=learner.device)
    learner.adapt(x, torch.tensor([0, 0, 1, 1], device=learner.device), n_steps=1).predict_proba(x)
    try:
        time_episode(learner)
    except Exception as exc:  # a model that cannot score an episode batch still predicts: its pace stays unknown
        warnings.warn(f"could not time an episode of {type(learner).__name__}: {exc}", stacklevel=2)


# What the app compares until a person picks others: one metric learner, one gradient-based learner
# and the simplest baseline, so the cold start loads three small models, not every one shipped.
DEFAULT_SELECTION = ("protonet_lake", "maml_lake", "pixel_nn")


def default_selection(names: list[str]) -> list[str]:
    """The default models among ``names``; the first three names when none of them is shipped."""
    chosen = [n for n in DEFAULT_SELECTION if n in names]
    return chosen or names[:3]


def model_titles(entries: list[ModelEntry]) -> dict[str, str]:
    """What the pages call each model: the algorithm's short name ("ProtoNet"), with the file's name where
    two of ``entries`` share it ("ProtoNet (protonet_mine)")."""
    titles = [e.title for e in entries]
    return {e.name: e.title if titles.count(e.title) == 1 else f"{e.title} ({e.name})" for e in entries}


def picker_labels(entries: list[ModelEntry]) -> dict[str, str]:
    """What the app's model picker shows for each model: "ProtoNet · 98.3%", its card's 5-way 1-shot
    figure beside the algorithm's short name, and the file's name too where two models share a title; a model
    trained on photos rather than Omniglot's glyphs names its dataset ("ProtoNet · 78.2% · CIFAR-FS")."""
    from playground.data.datasets import DATASETS

    titles = model_titles(entries)
    labels = {}
    for e in entries:
        title = titles[e.name]
        figure = e.figure(5, 1)
        labels[e.name] = title if figure is None else f"{title} · {100 * figure.accuracy:.1f}%"
        if e.dataset != "omniglot":
            info = DATASETS.get(e.dataset)
            labels[e.name] += f" · {info.title if info else e.dataset}"
    return labels


def model_dirs() -> list[Path]:
    """assets/checkpoints, then the folders named in ``PLAYGROUND_CHECKPOINTS``, in order."""
    extra = [Path(d).expanduser() for d in os.environ.get(EXTRA_DIRS_ENV, "").split(os.pathsep) if d.strip()]
    for d in extra:
        if not d.is_dir():
            raise ValueError(f"{EXTRA_DIRS_ENV} names {d}, which is not a folder")
    return [CHECKPOINT_DIR, *extra]


def shipped_models(directory: str | Path | None = None) -> list[ModelEntry]:
    """The checkpoints in ``directory``; by default those of `model_dirs` (the app's catalogue).

    A name (file stem) must be unique across the folders: the app knows a model by it.
    """
    entries: dict[str, ModelEntry] = {}
    for d in model_dirs() if directory is None else [Path(directory)]:
        for p in sorted(d.glob("*.pt")):
            if p.stem in entries:
                raise ValueError(
                    f"two models are named {p.stem!r}: {entries[p.stem].path} and {p}; rename one "
                    "(`python -m playground ship SOURCE TARGET` copies a checkpoint under a new name)"
                )
            entries[p.stem] = ModelEntry(p.stem, p, read_card(p))
    return list(entries.values())

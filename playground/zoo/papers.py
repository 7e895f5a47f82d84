"""The published Omniglot figures (the `vinyals` split, Conv-4) that our models are measured against."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from playground.zoo.card import ModelCard

SETTINGS = ((5, 1), (5, 5), (20, 1), (20, 5))  # (ways, shots), the columns of every table


@dataclass(frozen=True)
class Published:
    source: str  # who reported the figures, and where
    accuracy: tuple[float, float, float, float]  # percent, in the order of SETTINGS
    # Queries per class in the authors' test episodes, in the order of SETTINGS, where their code says
    # (None where we have not read it). Our cards use 15. With batch norm on the test batch's
    # statistics (transductive) the query batch is part of the method, so the count moves the figure.
    queries: tuple[int, int, int, int] | None = None

    def figure(self, n_way: int, k_shot: int) -> float:
        return self.accuracy[SETTINGS.index((n_way, k_shot))]

    def queries_for(self, n_way: int, k_shot: int) -> int | None:
        return None if self.queries is None else self.queries[SETTINGS.index((n_way, k_shot))]


# Keyed by algorithm name, "+first_order" for FO-MAML. MAML's and Reptile's figures use batch norm
# with the test batch's statistics (transductive), as this project's MAML does by default.
# Queries per class: Finn et al.'s code (cbfinn/maml, main.py) samples 2K images per class, K of
# them queries; Nichol et al.'s (openai/supervised-reptile, reptile.py) holds out one image per class
# (`_split_train_test(..., test_shots=1)`) and, transductive, predicts those N together; Sung et al.'s
# (floodsung/LearningToCompare_FSL, omniglot_test_*_shot.py) tests on K queries per class with its
# networks in training mode.
NICHOL_QUERIES = (1, 1, 1, 1)
PUBLISHED: dict[str, Published] = {
    "maml": Published("Finn et al. 2017", (98.7, 99.9, 95.8, 98.9), queries=(1, 5, 1, 5)),
    "maml+first_order": Published(
        "Nichol et al. 2018 (first-order MAML, transductive)", (98.3, 99.2, 89.4, 97.9), queries=NICHOL_QUERIES
    ),
    "protonet": Published("Snell et al. 2017", (98.8, 99.7, 96.0, 98.9)),
    "matching": Published("Vinyals et al. 2016", (98.1, 98.9, 93.8, 98.5)),
    "relation": Published("Sung et al. 2018", (99.6, 99.8, 97.6, 99.1), queries=(1, 5, 1, 5)),
    "reptile": Published("Nichol et al. 2018 (transductive)", (97.68, 99.48, 89.43, 97.12), queries=NICHOL_QUERIES),
    "metasgd": Published("Li et al. 2017", (99.53, 99.93, 95.93, 98.97)),
}


def published_for(card: ModelCard | Mapping[str, Any]) -> Published | None:
    """The published figures for the algorithm a model card describes (None if there are none)."""
    card = ModelCard.of(card)
    if card.config.get("first_order"):
        return PUBLISHED.get(f"{card.algorithm}+first_order")
    return PUBLISHED.get(card.algorithm)


def reaches(ours: float, ci95: float, paper: float) -> bool:
    """The issue's bar: our mean is above the paper's, or the paper's figure lies within our 95% CI."""
    return ours + ci95 >= paper


@dataclass(frozen=True)
class FiveWay:
    """A paper's 5-way 1-shot and 5-shot accuracy (percent) on a colour benchmark, with where it is printed."""

    source: str
    one_shot: float
    five_shot: float


# Conv-4 backbones throughout (the papers' own widths). Typed from each paper's table (docs/datasets.md).
PUBLISHED_COLOUR: dict[str, dict[str, FiveWay]] = {
    "mini-imagenet": {
        "maml": FiveWay("Finn et al. 2017, Table 1", 48.70, 63.11),
        "protonet": FiveWay("Snell et al. 2017, Table 2", 49.42, 68.20),
        "matching": FiveWay("Vinyals et al. 2016 (FCE), in Ravi & Larochelle 2017, Table 1", 43.56, 55.31),
        "relation": FiveWay("Sung et al. 2018, Table 2", 50.44, 65.32),
        "metasgd": FiveWay("Li et al. 2017 (MiniImagenet table)", 50.47, 64.03),
        "reptile": FiveWay("Nichol et al. 2018 (transductive), Table 1", 49.97, 65.99),
    },
    # Bertinetto et al. re-ran MAML, ProtoNet and Relation Net on their split; R2-D2 is their own method.
    "cifar-fs": {
        "maml": FiveWay("Bertinetto et al. 2019, Table 1", 58.9, 71.5),
        "protonet": FiveWay("Bertinetto et al. 2019, Table 1", 55.5, 72.0),
        "relation": FiveWay("Bertinetto et al. 2019, Table 1", 55.0, 69.3),
        "r2d2": FiveWay("Bertinetto et al. 2019, Table 1 (R2-D2, not in this project)", 65.3, 79.4),
    },
}


def colour_papers_table(dataset: str, cards: Iterable[ModelCard | Mapping[str, Any]]) -> str:
    """Markdown: each published 5-way figure on ``dataset`` beside the best of ours measured there (its
    model cards' test results), "not run" where no card of that algorithm on that dataset holds one."""
    lines = [
        f"| {dataset} | published 5-way 1-shot | ours | published 5-way 5-shot | ours | source |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    cards = [ModelCard.of(card) for card in cards]
    for algorithm, paper in PUBLISHED_COLOUR[dataset].items():
        ours = []
        for k_shot in (1, 5):
            found = [
                figure
                for card in cards
                if card.trained_on == dataset and card.algorithm == algorithm
                for figure in [card.result(5, k_shot)]
                if figure is not None
            ]
            best = max(found, key=lambda r: r.accuracy, default=None)
            ours.append("not run" if best is None else best.text)
        lines.append(
            f"| {algorithm} | {paper.one_shot:.2f} | {ours[0]} | {paper.five_shot:.2f} | {ours[1]} | {paper.source} |"
        )
    return "\n".join(lines)

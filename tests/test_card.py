"""The model card as a typed object: every shipped card reads and saves back byte for byte, old cards still
load, unknown keys survive, and what `evaluate --card` and `lake-runs --card` write reads back through it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from playground.zoo.card import Evaluation, LakeRuns, ModelCard, Result, SineResult, StyleShift, TrainingRecord

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted((ROOT / "assets").glob("**/*.json"))


def test_there_are_cards_to_check():
    assert len(CARDS) >= 20 and any(p.parent.name == "sinusoid" for p in CARDS)


@pytest.mark.parametrize("path", CARDS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_card_loads_and_saves_back_byte_identical(path, tmp_path):
    card = ModelCard.load(path)
    saved = card.save(tmp_path / path.name)
    assert saved.read_bytes() == path.read_bytes()
    assert card.to_dict() == json.loads(path.read_text())
    assert ModelCard.from_dict(card.to_dict()) == card


def test_the_shipped_cards_read_as_their_types():
    maml = ModelCard.load(ROOT / "assets/checkpoints/maml_lake.json")
    figure = maml.result(5, 1)
    assert isinstance(figure, Result) and figure.text.endswith("%") and 0.9 < figure.accuracy < 1
    assert (figure.n_way, figure.k_shot, figure.protocol) == (5, 1, "lake")
    assert isinstance(maml.lake_runs, LakeRuns) and len(maml.lake_runs.run_errors) == 20
    assert maml.training.command.startswith("python -m playground train") and maml.trained_on == "omniglot"
    assert maml.result(7, 3) is None
    assert isinstance(maml.style_shift, StyleShift) and maml.style_shift.row == "mixed"
    for n_way, k_shot in ((5, 1), (5, 5), (20, 1)):
        shifted = maml.style_shift.result(n_way, k_shot)
        assert shifted.episodes >= 100 and shifted.accuracy < maml.result(n_way, k_shot).accuracy
    sine = ModelCard.load(ROOT / "assets/sinusoid/sinusoid.json")
    assert sine.evaluation.results and all(isinstance(r, SineResult) for r in sine.evaluation.results)
    assert sine.results() == [] and sine.result(5, 1) is None  # no classification figures
    assert "task" in sine.extra and "metric" in sine.evaluation.extra  # its own keys, kept


def test_an_old_card_missing_sections_loads_with_empty_defaults_and_saves_only_what_it_had(tmp_path):
    old = {"algorithm": "protonet", "note": "an older card"}
    card = ModelCard.from_dict(old)
    assert card.evaluation == Evaluation() and card.training == TrainingRecord() and card.lake_runs is None
    assert card.style_shift is None
    assert card.results() == [] and card.result(5, 1) is None and card.trained_on == "omniglot"
    assert card.to_dict() == old
    # A section filled in later is written after the keys it had.
    figure = Result(n_way=5, k_shot=1, accuracy=0.9, ci95=0.01, text="90.0 ± 1.0 %", protocol="lake")
    grown = card.with_results([figure], device="cpu")
    assert list(grown.to_dict()) == ["algorithm", "note", "evaluation"]
    assert grown.to_dict()["evaluation"] == {"device": "cpu", "results": [figure.to_dict()]}
    assert ModelCard.load(grown.save(tmp_path / "m.json")).result(5, 1) == figure


def test_keys_this_version_does_not_name_are_kept_where_they_were():
    data = {
        "algorithm": "maml",
        "future": {"a": 1},
        "evaluation": {"results": [{"n_way": 5, "k_shot": 1, "new_measure": 0.5, "text": "x"}], "when": "today"},
        "training": {"iterations": 3, "schedule": "cosine"},
        "lake_runs": {"error": 0.1, "extra_field": True},
    }
    card = ModelCard.from_dict(data)
    assert card.extra == {"future": {"a": 1}} and card.evaluation.extra == {"when": "today"}
    assert card.result(5, 1).extra == {"new_measure": 0.5} and card.training.extra == {"schedule": "cosine"}
    assert card.lake_runs.extra == {"extra_field": True}
    assert json.dumps(card.to_dict()) == json.dumps(data)  # same keys, same order
    noted = ModelCard.from_dict(data)
    from dataclasses import replace

    assert list(replace(noted, note="n").to_dict()) == [*data, "note"]


def test_with_results_replaces_the_same_setting_and_keeps_the_others():
    def r(n, k, acc, **kw):
        return Result(n_way=n, k_shot=k, accuracy=acc, text=f"{acc}", protocol="lake", **kw)

    card = ModelCard(algorithm="protonet").with_results([r(20, 1, 0.9), r(5, 1, 0.95)], device="a")
    card = card.with_results([r(5, 1, 0.97)], device="b")
    assert [(x.n_way, x.k_shot, x.accuracy) for x in card.results()] == [(5, 1, 0.97), (20, 1, 0.9)]
    assert card.evaluation.device == "b"
    card = card.with_results([r(5, 1, 0.99, n_query=1)], device="b", other_queries=True)
    assert card.result(5, 1).accuracy == 0.97  # the standard count's figure stays
    assert [x.n_query for x in card.evaluation.other_queries] == [1]


def test_a_card_that_is_not_an_object_is_refused_in_plain_words(tmp_path):
    with pytest.raises(ValueError, match="must be a JSON object"):
        ModelCard.from_dict(["not", "a", "card"])
    with pytest.raises(ValueError, match="Evaluation must be a JSON object"):
        ModelCard.from_dict({"evaluation": 3})
    (tmp_path / "m.json").write_text("[1]")
    from playground.zoo.checkpoints import read_card

    assert read_card(tmp_path / "m.pt") is None  # unreadable cards read as none, as before


def test_cards_written_by_evaluate_and_lake_runs_read_back_through_the_type(tmp_path):
    from playground.algorithms import create_learner
    from playground.cli import main
    from playground.zoo.checkpoints import read_card, save_checkpoint

    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "m.pt", create_learner("protonet", hidden=8), train_config={"protocol": "lake"})
    flags = ["--device", "cpu", "--threads", "1", "--malloc", "default"]
    assert main(["evaluate", str(path), "--episodes", "2", "--ways", "5", "--shots", "1", "--card", *flags]) == 0
    card = read_card(path)
    assert isinstance(card, ModelCard) and card.algorithm == "protonet" and card.protocol == "lake"
    figure = card.result(5, 1)
    assert figure.episodes == 2 and figure.split == "test" and "evaluate" in figure.command
    assert card.lake_runs is None
    assert main(["lake-runs", str(path), "--card", *flags]) == 0
    card = read_card(path)
    assert card.result(5, 1) == figure  # kept beside the new figure
    assert len(card.lake_runs.run_errors) == 20 and 0 <= card.lake_runs.error <= 1
    assert card.lake_runs.human_error is not None and "lake-runs" in card.lake_runs.command
    text = (tmp_path / "m.json").read_text()
    assert card.dumps() == text and text.endswith("}\n")

"""The models trained on the papers' split (`assets/vinyals/`): kept out of the app, their cards reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest

from playground.zoo.checkpoints import load_learner, read_card
from playground.zoo.papers import SETTINGS, published_for
from playground.zoo.shipped import shipped_models

VINYALS_DIR = Path(__file__).resolve().parents[1] / "assets" / "vinyals"
MODELS = sorted(VINYALS_DIR.glob("*.pt"))


def test_every_vinyals_model_has_a_full_card_and_published_figures_to_meet():
    assert MODELS, f"no checkpoints in {VINYALS_DIR}"
    for path in MODELS:
        card = read_card(path)
        assert card is not None, f"{path.name} has no model card"
        assert card.protocol == "vinyals", path.name
        results = card.results()
        assert {(r.n_way, r.k_shot) for r in results} == set(SETTINGS), path.name
        assert all(r.episodes == 600 and r.split == "test" for r in results), path.name
        assert published_for(card) is not None, f"{path.name}: no published figures to compare with"
        # Figures at another query count are the authors' own count, measured as the standard ones are.
        for r in card.evaluation.other_queries:
            assert r.n_query == published_for(card).queries_for(r.n_way, r.k_shot), path.name
            assert r.episodes == 600 and r.split == "test" and f"--query {r.n_query}" in r.command
        assert card.training.command.startswith("python -m playground train"), path.name
        assert card.lake_runs is None, f"{path.name} must not be scored on Lake's runs"


def test_vinyals_models_are_not_offered_by_the_app():
    # The split trains on characters of the evaluation alphabets, which the app's tasks come from.
    offered = shipped_models()
    assert offered and all(e.card is None or e.card.protocol in (None, "lake") for e in offered)
    assert not {p.stem for p in MODELS} & {e.name for e in offered}


@pytest.mark.omniglot
@pytest.mark.slow  # the card's 600 episodes of ten Meta-SGD steps each
def test_a_card_figure_measured_with_its_own_steps_and_step_size_is_reproduced(omniglot):
    """A cell measured with `evaluate --inner-steps N --inner-lr LR` (named in the card) comes back with them."""
    from playground.data.protocols import load_splits
    from playground.evaluation.few_shot import evaluate_few_shot

    path = VINYALS_DIR / "metasgd_20way_vinyals.pt"
    recorded = read_card(path).result(5, 1)
    learner = load_learner(path, "cpu")
    assert recorded.inner_lr != learner.inner_lr  # not the model's own rate
    test = load_splits("vinyals", data=omniglot, rotations=False).test
    kwargs = {"seed": recorded.seed, "n_steps": recorded.inner_steps, "inner_lr": recorded.inner_lr}
    res = evaluate_few_shot(learner, test, 5, 1, 15, 600, **kwargs)
    # Ten gradient steps on other threads may round differently: a few of 45,000 queries may flip.
    assert res.mean == pytest.approx(recorded.accuracy, abs=1e-4)

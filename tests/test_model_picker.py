"""The app's model picker names models as people know them, with their card's figure."""

from __future__ import annotations

import shutil

from playground.algorithms import available, learner_class
from playground.zoo.shipped import CHECKPOINT_DIR, model_titles, picker_labels, shipped_models


def test_every_algorithm_has_a_short_title():
    titles = {name: learner_class(name).title for name in available()}
    assert all(t and len(t) <= 16 for t in titles.values()), titles
    assert len(set(titles.values())) == len(titles)


def test_labels_are_short_distinct_and_carry_the_card_figure():
    entries = shipped_models()
    labels = picker_labels(entries)
    assert set(labels) == {e.name for e in entries}
    assert len(set(labels.values())) == len(labels)
    assert labels["protonet_lake"].startswith("ProtoNet · ")
    card = next(e for e in entries if e.name == "protonet_lake").card
    assert labels["protonet_lake"] == f"ProtoNet · {100 * card.result(5, 1).accuracy:.1f}%"
    assert all("_" not in label for label in labels.values())


def test_two_models_of_one_algorithm_keep_their_file_names(tmp_path):
    for stem in ("protonet_lake", "maml_lake"):
        for ext in (".pt", ".json"):
            shutil.copy(CHECKPOINT_DIR / f"{stem}{ext}", tmp_path / f"{stem}{ext}")
    shutil.copy(CHECKPOINT_DIR / "protonet_lake.pt", tmp_path / "protonet_mine.pt")
    labels = picker_labels(shipped_models(tmp_path))
    assert labels["protonet_lake"].startswith("ProtoNet (protonet_lake) · ")
    assert labels["protonet_mine"] == "ProtoNet (protonet_mine)"  # no card: no figure
    assert labels["maml_lake"].startswith("MAML · ")
    # The pages' tables and charts name the models as the picker does, without the figure.
    titles = model_titles(shipped_models(tmp_path))
    assert titles == {
        "maml_lake": "MAML",
        "protonet_lake": "ProtoNet (protonet_lake)",
        "protonet_mine": "ProtoNet (protonet_mine)",
    }

"""Style shifts on real Omniglot drawings, the bank meta-training draws from, and the style-shift benchmark."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from playground.data.omniglot import omniglot_available
from playground.data.style_shift import (
    SHIFT_NAMES,
    ink_of,
    load_originals,
    picture_of,
    render,
    shifted_image,
    skeleton,
    style_for,
    style_variants,
    training_image,
)
from playground.interactive.imaging import _stroke_width, preprocess_image
from playground.zoo.card import ModelCard

pytestmark = pytest.mark.omniglot


@pytest.fixture(scope="module")
def originals():
    if not omniglot_available():
        pytest.skip("Omniglot not found")
    return load_originals()


@pytest.fixture(scope="module")
def drawing(originals):
    return originals.drawing(originals.index()["Latin/character01"], 0)


def ink(picture: np.ndarray) -> np.ndarray:
    return ink_of(picture.astype(np.float32) / 255.0)


def test_originals_match_the_28px_dataset(originals, omniglot):
    # Same order as load_omniglot: the 105 px original, downsampled as Omniglot is, is the cached 28 px image.
    from PIL import Image

    from playground.data.omniglot import preprocess_omniglot_image

    for c in (0, 700, 1622):
        assert originals.names[c] == omniglot.names()[c]
        img = Image.fromarray((~originals.drawing(c, 3)).astype(np.uint8) * 255)
        assert np.array_equal(preprocess_omniglot_image(img), omniglot.images[c, 3])
        assert np.array_equal(training_image(originals.drawing(c, 3)), omniglot.images[c, 3])


def test_a_drawing_the_app_refuses_stands_in_the_bank_as_its_training_image(tmp_path, originals, omniglot):
    # Braille's dots read as several glyphs to the app's preprocessing, even unshifted.
    name = "Braille/character06"
    c = originals.index()[name]
    with pytest.raises(ValueError, match="glyphs side by side"):
        shifted_image(originals.drawing(c, 0), [], seed=0)
    bank = style_variants([name], variants=3, seed=0, cache_dir=tmp_path)
    assert bank.shape == (1, 20, 3, 28, 28)
    refused = [
        (d, v)
        for d in range(20)
        for v in range(3)
        if torch.equal(bank[0, d, v], torch.from_numpy(omniglot.images[c, d]))
    ]
    assert refused and len(refused) < 60  # some variants read as one glyph, the rest fall back


@pytest.mark.parametrize("name", SHIFT_NAMES)
def test_each_shift_is_deterministic_for_a_seed_and_survives_preprocessing(drawing, name):
    a = render(drawing, [(name, 0.8)], seed=3)
    assert np.array_equal(a, render(drawing, [(name, 0.8)], seed=3))
    assert not np.array_equal(a, render(drawing, [(name, 0.8)], seed=4))
    small = preprocess_image(render(drawing, [(name, 0.5)], seed=3))
    assert small.shape == (28, 28) and small.dtype == np.uint8 and small.max() == 255


def test_pen_shifts_change_the_stroke_width(drawing):
    clean = ink(render(drawing, [], 0)) > 0.5
    thin = ink(render(drawing, [("hairline", 1.0)], 0)) > 0.5
    thick = ink(render(drawing, [("marker", 1.0)], 0)) > 0.5
    assert _stroke_width(thin) < 0.5 * _stroke_width(clean) < 0.25 * _stroke_width(thick)
    ends = ink(render(drawing, [("stroke_ends", 1.0)], 0)) > 0.5
    assert ends.sum() > 1.05 * clean.sum() and (ends | clean).sum() == ends.sum()  # ink added, none taken


def test_geometric_shifts_move_the_ink_but_keep_its_amount(drawing):
    clean = ink(render(drawing, [], 0)).sum()
    for name in ("slant", "rotation", "elastic"):
        picture = render(drawing, [(name, 1.0)], 1)
        moved = ink(picture)
        assert 0.75 * clean < moved.sum() < 1.3 * clean, name
        # The same glyph no longer lands on the same pixels (the frame may grow; compare the centre crop).
        h, w = moved.shape
        top, left = (h - 105) // 2, (w - 105) // 2
        crop = moved[top : top + 105, left : left + 105] > 0.5
        assert (crop & drawing).sum() < 0.8 * (crop | drawing).sum(), name
    placed = ink(render(drawing, [("placement", 1.0)], 2))
    assert placed.shape[0] > 105 and placed.sum() > 0


def test_appearance_shifts(drawing):
    clean = render(drawing, [], 0).astype(np.float32) / 255
    paper = ~drawing
    coloured = render(drawing, [("ink_colour", 0.5)], 0).astype(np.float32) / 255
    assert np.ptp(coloured[drawing], axis=1).mean() > 0.1  # the ink has a hue, not a grey
    blurred = render(drawing, [("blur", 1.0)], 0).astype(np.float32) / 255
    greys = lambda p: ((p[..., 0] > 0.1) & (p[..., 0] < 0.9)).mean()  # noqa: E731
    assert greys(blurred) > greys(clean) + 0.05
    noisy = render(drawing, [("noise", 1.0)], 0).astype(np.float32) / 255
    assert noisy[paper].std() > 0.05 and clean[paper].std() == 0
    textured = render(drawing, [("paper", 1.0)], 0).astype(np.float32) / 255
    assert textured[paper].std() > 0.02 and textured[paper].mean() < 0.95
    photo = render(drawing, [("photo", 1.0)], 0).astype(np.float32) / 255
    assert photo.shape[0] > 105 and np.percentile(photo, 99) - np.percentile(photo, 1) < 0.9  # low contrast
    jpeg = render(drawing, [("jpeg", 1.0)], 0)
    assert jpeg.shape[0] < 105 and len(np.unique(jpeg)) > 10  # small, with ringing greys


def test_skeleton_is_thin_and_keeps_the_strokes(drawing):
    lines = skeleton(drawing)
    assert 0 < lines.sum() < 0.5 * drawing.sum() and (lines & ~drawing).sum() == 0
    assert np.array_equal(picture_of(drawing.astype(np.float32))[..., 0] < 0.5, drawing)


def test_styles_and_bad_names(drawing):
    rng = np.random.default_rng(0)
    assert style_for("none", rng) == []
    (name, strength), *rest = style_for("blur", rng)
    assert name == "blur" and 0.5 <= strength <= 1 and not rest
    with pytest.raises(ValueError, match="unknown style shift 'smudge'"):
        render(drawing, [("smudge", 0.5)], 0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        render(drawing, [("blur", 2.0)], 0)


def test_bank_is_rotated_with_its_class_and_the_sampler_serves_variants(tmp_path, originals):
    from playground.data.episodes import StyleTaskSampler, TaskSampler
    from playground.data.protocols import ClassDataset

    names = ["Latin/character01", "Latin/character02", "Greek/character01", "Latin/character01 rot90"]
    bank = style_variants(names, variants=2, seed=0, cache_dir=tmp_path)
    assert bank.shape == (4, 20, 2, 28, 28) and bank.dtype == torch.uint8
    assert torch.equal(bank[3], torch.rot90(bank[0], 1, dims=(2, 3)))
    again = style_variants(names, variants=2, seed=0, cache_dir=tmp_path)  # from the cache
    assert torch.equal(bank, again) and list(tmp_path.glob("style-bank-*.npy"))
    clean = torch.from_numpy(
        np.stack(
            [
                np.stack(
                    [
                        preprocess_image(picture_of(originals.drawing(originals.index()[n.split()[0]], d)))
                        for d in range(20)
                    ]
                )
                for n in names[:3]
            ]
        )
    )
    clean = torch.cat([clean, torch.rot90(clean[:1], 1, dims=(2, 3))])
    assert not torch.equal(bank[:, :, 0], clean)
    dataset = ClassDataset(clean, names)
    plain = TaskSampler(dataset, 3, 1, 4, seed=5).sample_batch(6)
    styled = StyleTaskSampler(dataset, bank, 1.0, 3, 1, 4, seed=5).sample_batch(6)
    assert styled.class_names == plain.class_names  # the same episodes, other pictures
    candidates = (bank.float() / 255).reshape(-1, 784)
    for x in (styled.support_x, styled.query_x):
        flat = x.reshape(-1, 784)
        hits = [(candidates == img).all(-1).any() for img in flat]  # every image is a variant
        assert all(hits)
    none = StyleTaskSampler(dataset, bank, 0.0, 3, 1, 4, seed=5).sample_batch(6)
    assert torch.equal(none.support_x, plain.support_x) and torch.equal(none.query_x, plain.query_x)
    with pytest.raises(ValueError, match="do not fit"):
        StyleTaskSampler(dataset, bank[:2], 0.5, 3, 1, 4)


def test_shifted_image_is_what_a_model_sees(drawing):
    small = shifted_image(drawing, [("marker", 1.0)], 0)
    assert small.shape == (28, 28) and small.dtype == np.uint8


def test_training_flag_is_checked():
    from playground.cli import build_parser
    from playground.training import TrainConfig, validate_config

    with pytest.raises(ValueError, match="--augment-style must be a probability"):
        validate_config(TrainConfig(augment_style=1.5))
    with pytest.raises(ValueError, match="needs --protocol lake"):
        validate_config(TrainConfig(augment_style=0.5, protocol="vinyals"))
    args = build_parser().parse_args(["train", "--augment-style", "0.5", "--style-variants", "2"])
    assert (args.augment_style, args.style_variants) == (0.5, 2)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--augment-style", "2"])


@pytest.mark.slow  # renders and classifies 40 shifted episodes twice
def test_benchmark_runs_and_a_strong_shift_bites(tmp_path):
    from playground.evaluation.style_shift import OVERALL, ShiftedImages, format_table, style_shift_benchmark
    from playground.zoo.shipped import shipped_models

    entry = next(e for e in shipped_models() if e.name == "protonet_lake")
    learners = {"protonet_lake": entry.load("cpu", warm=False)}
    images = ShiftedImages(seed=0, cache_dir=tmp_path)
    cells = style_shift_benchmark(
        learners, ["none", "noise", "marker"], [(5, 1)], episodes=20, n_query=3, images=images
    )
    by = {c.row: c for c in cells}
    assert set(by) == {"none", "noise", "marker", OVERALL}
    assert all(0 <= c.mean <= 1 and len(c.accuracies) == 20 for c in cells if c.row != OVERALL)
    assert len(by[OVERALL].accuracies) == 40  # the named shifts pooled
    # A marker's merged strokes cost the model; sensor noise, which preprocessing smooths away, does not.
    assert by["none"].mean > 0.9 and by["marker"].mean < by["none"].mean - 0.05
    assert by["noise"].mean > by["none"].mean - 0.05
    assert "noise" in format_table(cells)
    # A re-run renders nothing: the images come from the cache, and give the same figures.
    again = style_shift_benchmark(
        learners, ["none", "noise"], [(5, 1)], episodes=20, n_query=3, images=ShiftedImages(0, cache_dir=tmp_path)
    )
    assert [c.accuracies for c in again[:2]] == [by["none"].accuracies, by["noise"].accuracies]


def test_the_command_writes_the_table_and_json(tmp_path, capsys):
    import json

    from playground.cli import main

    out = tmp_path / "style.json"
    argv = ["style-shift", "--models", "pixel_nn", "--shifts", "none", "--settings", "5x1", "--episodes", "3"]
    assert main([*argv, "--workers", "1", "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "5-way 1-shot (3 episodes per shift" in printed and "pixel_nn" in printed
    record = json.loads(out.read_text())
    (cell,) = record["results"]
    assert (cell["model"], cell["shift"], cell["episodes"]) == ("pixel_nn", "none", 3)
    assert record["command"].startswith("python -m playground style-shift")
    assert main(["style-shift", "--models", "nonesuch", "--out", str(out)]) == 2


def test_record_cards_writes_the_mixed_row_into_each_models_card(tmp_path, monkeypatch, capsys):
    import json
    import shutil

    from playground.cli import main
    from playground.zoo.shipped import CHECKPOINT_DIR

    own = tmp_path / "own"
    own.mkdir()
    for suffix in (".pt", ".json"):
        shutil.copy(CHECKPOINT_DIR / f"pixel_nn{suffix}", own / f"mine{suffix}")
    monkeypatch.setenv("PLAYGROUND_CHECKPOINTS", str(own))
    out = tmp_path / "style.json"
    argv = ["style-shift", "--models", "mine", "--shifts", "none", "mixed", "--settings", "5x1", "--episodes", "3"]
    assert main([*argv, "--workers", "1", "--out", str(out), "--threads", "1", "--record-cards"]) == 0
    record = json.loads(out.read_text())
    (mixed,) = [c for c in record["results"] if c["shift"] == "mixed"]
    card = ModelCard.load(own / "mine.json")
    assert card.style_shift.row == "mixed" and card.style_shift.command == record["command"]
    (result,) = card.style_shift.results
    assert (result.n_way, result.k_shot, result.episodes) == (5, 1, 3)
    assert result.accuracy == mixed["accuracy"] and result.text == f"{mixed['text']} %"
    assert card.style_shift.result(5, 1) == result and card.style_shift.result(20, 1) is None
    # Everything else the card held is as it was.
    before = ModelCard.load(CHECKPOINT_DIR / "pixel_nn.json")
    assert card.evaluation == before.evaluation and card.training == before.training
    assert "mine.json" in capsys.readouterr().out

"""The Omniglot loader, protocols and Lake's runs: synthetic layouts always, real data where present."""

from __future__ import annotations

import io
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from playground.data.omniglot import DataError, load_omniglot, preprocess_omniglot_image


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    arr = np.full((105, 105), 255, np.uint8)
    r, c = rng.integers(20, 80, size=2)
    arr[r : r + 15, c : c + 3] = 0
    buf = io.BytesIO()
    Image.fromarray(arr).convert("1").save(buf, "PNG")
    return buf.getvalue()


def _fake_omniglot(root, as_zip: bool, chars: int = 2):
    for s_i, set_name in enumerate(("images_background", "images_evaluation")):
        files = {
            f"{set_name}/Alpha{s_i}/character{c + 1:02d}/{c:04d}_{d + 1:02d}.png": _png(100 * c + d)
            for c in range(chars)
            for d in range(20)
        }
        if as_zip:
            with zipfile.ZipFile(root / f"{set_name}.zip", "w") as zf:
                for name, data in files.items():
                    zf.writestr(name, data)
        else:
            for name, data in files.items():
                p = root / name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)


def test_folder_tree_and_zip_give_the_same_data(tmp_path):
    (tmp_path / "tree").mkdir()
    (tmp_path / "zips").mkdir()
    _fake_omniglot(tmp_path / "tree", as_zip=False)
    _fake_omniglot(tmp_path / "zips", as_zip=True)
    a = load_omniglot(tmp_path / "tree", cache_dir=tmp_path / "c1")
    b = load_omniglot(tmp_path / "zips", cache_dir=tmp_path / "c2")
    assert a.images.shape == (4, 20, 28, 28)
    assert np.array_equal(a.images, b.images) and a.names() == b.names()
    assert a.sets == ["images_background"] * 2 + ["images_evaluation"] * 2


def test_cache_is_written_and_reused(tmp_path):
    _fake_omniglot(tmp_path, as_zip=True)
    first = load_omniglot(tmp_path, cache_dir=tmp_path / "cache")
    caches = list((tmp_path / "cache").glob("*.npz"))
    assert len(caches) == 1
    second = load_omniglot(tmp_path, cache_dir=tmp_path / "cache")
    assert np.array_equal(first.images, second.images)
    caches[0].write_bytes(b"garbage")  # a corrupt cache is rebuilt, not trusted
    third = load_omniglot(tmp_path, cache_dir=tmp_path / "cache")
    assert np.array_equal(first.images, third.images)


def test_missing_data_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="download"):
        load_omniglot(tmp_path, cache_dir=tmp_path / "c")


def test_incomplete_or_corrupt_data_names_the_file(tmp_path):
    _fake_omniglot(tmp_path, as_zip=False)
    bad = next((tmp_path / "images_evaluation").glob("*/*/*.png"))
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match=bad.name):
        load_omniglot(tmp_path, cache_dir=tmp_path / "c")
    bad.unlink()
    with pytest.raises(DataError, match="19 drawings"):
        load_omniglot(tmp_path, cache_dir=tmp_path / "c")


def test_preprocessing_is_antialiased_and_ink_high():
    img = Image.open(io.BytesIO(_png(3)))
    arr = preprocess_omniglot_image(img)
    assert arr.shape == (28, 28) and arr.dtype == np.uint8
    assert arr.max() >= 100 and arr[0, 0] == 0  # ink high, background zero
    assert len(np.unique(arr)) > 2  # grey levels from area averaging


@pytest.mark.omniglot
def test_real_omniglot_shape_and_fast_second_load(omniglot):
    assert omniglot.images.shape == (1623, 20, 28, 28)
    assert len(set(omniglot.alphabets)) == 50
    t = time.perf_counter()
    load_omniglot()
    assert time.perf_counter() - t < 5.0  # cached: generous bound, the benchmark has the figure


@pytest.mark.omniglot
def test_lake_protocol_never_trains_on_evaluation_alphabets(omniglot):
    from playground.data.protocols import load_splits

    s = load_splits("lake", data=omniglot, rotations=True)
    alpha = lambda names: {n.split("/")[0] for n in names}  # noqa: E731
    assert len(alpha(s.train.names)) == 25 and len(alpha(s.val.names)) == 5
    assert not alpha(s.train.names) & alpha(s.val.names)
    assert alpha(s.test.names) == set(omniglot.alphabet_names("images_evaluation"))
    assert not (alpha(s.train.names) | alpha(s.val.names)) & alpha(s.test.names)
    assert s.test.num_classes == 659 and s.train.num_classes % 4 == 0


@pytest.mark.omniglot
def test_vinyals_protocol_sizes_and_disjointness(omniglot):
    from playground.data.protocols import load_splits

    s = load_splits("vinyals", data=omniglot)
    assert (s.train.num_classes, s.val.num_classes, s.test.num_classes) == (4400, 400, 1692)
    base = lambda names: {n.split(" rot")[0] for n in names}  # noqa: E731
    assert not base(s.train.names) & base(s.test.names)
    assert not base(s.val.names) & base(s.test.names)
    assert len(base(s.train.names) | base(s.val.names) | base(s.test.names)) == 1623


@pytest.mark.omniglot
def test_lake_runs_load():
    from playground.lake.runs import load_lake_runs

    runs = load_lake_runs()
    assert len(runs) == 20
    for run in runs:
        assert run.train_x.shape == (20, 1, 28, 28) and run.test_x.shape == (20, 1, 28, 28)
        assert sorted(run.test_y.tolist()) == list(range(20))  # each class tested once

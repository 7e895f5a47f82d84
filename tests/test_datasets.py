"""mini-ImageNet, CIFAR-FS and class folders: loaders on tiny datasets in each real layout, their error
messages, the colour networks, and real learning through `train` and `evaluate`."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from colour_data import (
    class_images,
    write_cifar100,
    write_folder,
    write_mini_csv,
    write_mini_pickles,
)

from playground.cli import main
from playground.data.datasets import DATASETS, load_dataset_splits
from playground.data.omniglot import DataError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test decodes into its own cache, never the person's."""
    monkeypatch.setenv("PLAYGROUND_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    return write_cifar100(tmp_path_factory.mktemp("cifar")).parent


def test_the_cifar_fs_split_is_bertinettos_64_16_20_of_cifar_100():
    from playground.data.cifarfs import CIFAR_FS_SPLIT

    sizes = {split: len(names) for split, names in CIFAR_FS_SPLIT.items()}
    assert sizes == {"train": 64, "val": 16, "test": 20}
    everything = [n for names in CIFAR_FS_SPLIT.values() for n in names]
    assert len(set(everything)) == 100
    assert {"whale", "rocket", "baby"} <= set(CIFAR_FS_SPLIT["test"])


def test_cifar_fs_reads_the_cifar_100_pickles_and_caches_them(cifar, cache):
    splits = load_dataset_splits("cifar-fs", data_dir=cifar)
    assert splits.protocol == "bertinetto"
    assert [s.num_classes for s in (splits.train, splits.val, splits.test)] == [64, 16, 20]
    assert tuple(splits.train.images.shape) == (64, 20, 3, 32, 32)
    assert splits.test.image_shape == (3, 32, 32)
    assert splits.test.normalization == DATASETS["cifar-fs"].normalization
    # The class's 16 training images then its 4 test images, pixel for pixel.
    from playground.data.cifarfs import CIFAR_FS_SPLIT

    label = sorted(n for names in CIFAR_FS_SPLIT.values() for n in names).index("whale")
    whale = splits.test.images[splits.test.names.index("whale")].numpy()
    assert np.array_equal(whale[:16], class_images(label, 16, 32).transpose(0, 3, 1, 2))
    assert np.array_equal(whale[16:], class_images(label, 4, 32, seed=1000).transpose(0, 3, 1, 2))
    cached = list(cache.glob("cifar-fs32-*.npz"))
    assert len(cached) == 1
    cached[0].write_bytes(b"truncated")  # a broken cache is rebuilt, not trusted
    again = load_dataset_splits("cifar-fs", data_dir=cifar / "cifar-100-python")
    assert torch.equal(again.test.images, splits.test.images)


def test_mini_imagenet_reads_both_layouts(tmp_path):
    pickles = load_dataset_splits("mini-imagenet", data_dir=write_mini_pickles(tmp_path / "pkl"))
    assert pickles.protocol == "ravi"
    assert [s.num_classes for s in (pickles.train, pickles.val, pickles.test)] == [64, 16, 20]
    assert tuple(pickles.test.images.shape) == (20, 6, 3, 84, 84)
    assert np.array_equal(pickles.train.images[3].numpy(), class_images(3, 6, 84).transpose(0, 3, 1, 2))
    csv = load_dataset_splits("mini-imagenet", data_dir=write_mini_csv(tmp_path / "csv"))
    assert tuple(csv.val.images.shape) == (16, 3, 3, 84, 84)  # resized from 100x100 to 84x84
    assert csv.test.names == pickles.test.names == [f"n{i:08d}" for i in range(80, 100)]


def test_a_folder_is_split_by_the_seeded_rule_or_used_whole(tmp_path):
    from playground.data.folder import seeded_split

    root = write_folder(tmp_path / "photos", classes=10, per_class=4)
    (root / "class_03" / "extra.jpg").write_bytes((root / "class_03" / "000.jpg").read_bytes())
    (root / "class_03" / "notes.txt").write_text("not an image")
    splits = load_dataset_splits("folder", data_dir=root)
    assert [s.num_classes for s in (splits.train, splits.val, splits.test)] == [6, 2, 2]
    assert splits.train.drawings_per_class == 4  # the smallest class's count
    assert tuple(splits.test.images.shape[2:]) == (3, 84, 84)
    rule = seeded_split([f"class_{i:02d}" for i in range(10)])
    assert sorted(splits.test.names) == sorted(n for n, s in rule.items() if s == "test")
    assert seeded_split(list(reversed(rule))) == rule  # the rule depends on the names, not their order
    whole = load_dataset_splits("folder", "whole", root)
    assert (whole.train.num_classes, whole.test.num_classes) == (0, 10)
    with pytest.raises(DataError, match="at least 5 classes"):
        load_dataset_splits("folder", data_dir=write_folder(tmp_path / "few", classes=3, per_class=3))


def test_missing_and_corrupt_files_are_named_with_how_to_get_the_data(tmp_path, cifar):
    with pytest.raises(DataError, match=r"missing .*cifar-100-python/meta\. CIFAR-FS is built from CIFAR-100"):
        load_dataset_splits("cifar-fs", data_dir=tmp_path / "nothing")
    with pytest.raises(DataError, match=r"missing .*mini-imagenet-cache-val\.pkl"):
        root = tmp_path / "half"
        root.mkdir()
        (root / "mini-imagenet-cache-train.pkl").write_bytes(b"")
        load_dataset_splits("mini-imagenet", data_dir=root)
    with pytest.raises(DataError, match=r"missing .*train\.csv.*mini-ImageNet is not downloaded"):
        load_dataset_splits("mini-imagenet", data_dir=tmp_path)
    bad = write_mini_pickles(tmp_path / "bad", per_class=2)
    (bad / "mini-imagenet-cache-test.pkl").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(DataError, match=r"mini-imagenet-cache-test\.pkl is not a mini-ImageNet pickle"):
        load_dataset_splits("mini-imagenet", data_dir=bad)
    with (bad / "mini-imagenet-cache-test.pkl").open("wb") as f:
        pickle.dump({"image_data": np.zeros((2, 32, 32, 3), np.uint8), "class_dict": {"a": [0, 1]}}, f)
    with pytest.raises(DataError, match=r"image_data is \[2, 32, 32, 3\], expected \[N, 84, 84, 3\]"):
        load_dataset_splits("mini-imagenet", data_dir=bad)
    csv = write_mini_csv(tmp_path / "csv", per_class=2, size=84)
    (csv / "images" / "n0000000500000001.png").unlink()
    with pytest.raises(DataError, match=r"missing .*n0000000500000001\.png \(listed in .*train\.csv line 13\)"):
        load_dataset_splits("mini-imagenet", data_dir=csv)
    photos = write_folder(tmp_path / "photos", classes=5, per_class=3)
    (photos / "class_02" / "001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"cannot read the image .*class_02/001\.jpg"):
        load_dataset_splits("folder", data_dir=photos)
    pkl = cifar / "cifar-100-python"
    short = tmp_path / "short" / "cifar-100-python"
    short.mkdir(parents=True)
    for name in ("meta", "test"):
        (short / name).write_bytes((pkl / name).read_bytes())
    with (pkl / "train").open("rb") as f:
        train = pickle.load(f)
    keep = np.asarray(train["fine_labels"]) != 7
    with (short / "train").open("wb") as f:
        pickle.dump({"data": train["data"][keep], "fine_labels": list(np.asarray(train["fine_labels"])[keep])}, f)
    with pytest.raises(DataError, match=r"another number of images than 20: .* \(4\)"):
        load_dataset_splits("cifar-fs", data_dir=short.parent)


def test_colour_networks_have_the_papers_sizes_and_adapt_without_touching_the_weights():
    from playground.algorithms import create_learner
    from playground.models import Conv4, ResNet12

    assert Conv4(3, 32, image_size=84).embedding_dim == 800  # MAML's mini-ImageNet network
    assert Conv4(3, 64, image_size=84).embedding_dim == 1600  # ProtoNet's
    assert Conv4().embedding_dim == 64
    assert ResNet12().embedding_dim == 640
    torch.manual_seed(0)
    x, y = torch.randn(10, 3, 16, 16), torch.arange(5).repeat(2)
    for algorithm in ("maml", "protonet"):
        learner = create_learner(algorithm, in_channels=3, image_size=16, backbone="resnet12", hidden=8).eval()
        before = {k: v.clone() for k, v in learner.state_dict().items()}
        assert learner.adapt(x, y).logits(torch.randn(3, 3, 16, 16)).shape == (3, 5)
        assert all(torch.equal(before[k], v) for k, v in learner.state_dict().items())
        with pytest.raises(ValueError, match=r"support images must be \[n, 3, 16, 16\], got \[10, 1, 28, 28\]"):
            learner.adapt(torch.randn(10, 1, 28, 28), y)
    for algorithm, why in (("mann", "fixed input size"), ("relation", "1x28x28 glyphs")):
        with pytest.raises(ValueError, match=f"cannot run on 3x84x84 images: .*{why}"):
            create_learner(algorithm, in_channels=3, image_size=84)
    with pytest.raises(ValueError, match="matching runs on conv4 only, not resnet12"):
        create_learner("matching", backbone="resnet12")


def test_colour_augmentation_crops_flips_and_jitters_reproducibly():
    from playground.data.augment import colour_augment

    x = torch.from_numpy(class_images(0, 8, 32).transpose(0, 3, 1, 2)).float() / 255
    a = colour_augment(x, torch.Generator().manual_seed(1))
    b = colour_augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert 0 <= a.min() and a.max() <= 1
    assert not torch.allclose(a, x)


def _accuracy(output: str) -> float:
    return float(output.rsplit(": ", 1)[1].split(" ± ")[0])


def test_protonet_learns_cifar_fs_through_train_and_evaluate(cifar, tmp_path, capsys):
    from playground.algorithms import create_learner
    from playground.evaluation.few_shot import evaluate_few_shot

    out = tmp_path / "run"
    common = ["--device", "cpu", "--threads", "1", "--malloc", "default", "--data-dir", str(cifar)]
    train = "--dataset cifar-fs --hidden 16 --iterations 30 --meta-batch 4 --val-every 30 --val-episodes 20 --query 5"
    assert main(["train", *train.split(), *common, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out / "best.pt"), "--episodes", "100", "--query", "5", "--card", *common]) == 0
    printed = capsys.readouterr().out
    assert "protonet bertinetto/test 5-way 1-shot, 100 episodes" in printed, printed
    trained = _accuracy(printed.splitlines()[0])
    card = json.loads((out / "best.json").read_text())
    assert card["dataset"] == "cifar-fs" and card["protocol"] == "bertinetto"
    # The same network untrained, on the same episodes: training, not the architecture, made the difference.
    torch.manual_seed(0)
    untrained = create_learner("protonet", in_channels=3, image_size=32, hidden=16)
    splits = load_dataset_splits("cifar-fs", data_dir=cifar)
    before = 100 * evaluate_few_shot(untrained, splits.test, 5, 1, 5, 100).mean
    assert trained >= 50.0 and trained >= before + 5, (trained, before)  # chance: 20%
    # A model for 32x32 colour images is not evaluated on glyphs or 84x84 photos.
    assert main(["evaluate", str(out / "best.pt"), "--dataset", "omniglot", *common[:-2]]) == 2
    assert "network takes 3x32x32 images; Omniglot has 1x28x28" in capsys.readouterr().err


def test_maml_trains_on_a_folder_of_photos_and_glyph_only_learners_say_so(tmp_path, capsys):
    photos = write_folder(tmp_path / "photos", classes=10, per_class=5, size=84)
    common = ["--device", "cpu", "--threads", "1", "--malloc", "default", "--data-dir", str(photos)]
    run = "--dataset folder --hidden 4 --iterations 2 --meta-batch 2 --val-every 2 --val-episodes 4 --ways 2 --query 2"
    assert (
        main(["train", "--algorithm", "maml", "--first-order", *run.split(), *common, "--out", str(tmp_path / "m")])
        == 0
    )
    assert (tmp_path / "m" / "best.pt").is_file()
    capsys.readouterr()
    assert main(["train", "--algorithm", "mann", *run.split(), *common]) == 2
    assert "--algorithm mann cannot run on a folder of images: " in capsys.readouterr().err
    assert main(["train", "--protocol", "whole", *run.split(), *common]) == 2
    assert "--protocol whole has no meta-training classes" in capsys.readouterr().err


def test_report_papers_prints_the_published_colour_figures_and_claims_none_of_ours(tmp_path, capsys):
    assert main(["report", "--papers", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| maml | 48.70 | not run | 63.11 | not run | Finn et al. 2017, Table 1 |" in out
    assert "| protonet | 55.50 | not run | 72.00 | not run | Bertinetto et al. 2019, Table 1 |" in out


def test_the_app_catalogue_names_a_photo_models_dataset_and_loads_it(cifar, tmp_path):
    from playground.algorithms import create_learner
    from playground.zoo.checkpoints import save_checkpoint, write_card
    from playground.zoo.shipped import picker_labels, shipped_models

    learner = create_learner("protonet", in_channels=3, image_size=32, hidden=4)
    path = save_checkpoint(tmp_path / "protonet_cifar.pt", learner, train_config={"dataset": "cifar-fs"})
    result = {"n_way": 5, "k_shot": 1, "accuracy": 0.5, "ci95": 0.01, "text": "50.0 ± 1.0 %"}
    write_card(path, {"algorithm": "protonet", "dataset": "cifar-fs", "evaluation": {"results": [result]}})
    glyphs = save_checkpoint(tmp_path / "protonet_lake.pt", create_learner("protonet", hidden=4))
    write_card(glyphs, {"algorithm": "protonet", "evaluation": {"results": []}})
    entries = shipped_models(tmp_path)
    labels = picker_labels(entries)
    assert labels["protonet_cifar"] == "ProtoNet (protonet_cifar) · 50.0% · CIFAR-FS"
    assert labels["protonet_lake"] == "ProtoNet (protonet_lake)"
    photo = next(e for e in entries if e.name == "protonet_cifar")
    assert photo.dataset == "cifar-fs" and photo.load().image_shape == (3, 32, 32)  # warmed up on its own images

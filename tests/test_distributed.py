"""Data-parallel meta-training on 2 CPU processes (gloo) agrees with one process up to float order."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from PIL import Image

from playground.algorithms import available, create_learner, learner_class
from playground.data.episodes import TaskSampler
from playground.runtime import distributed

from synthetic import synthetic_glyphs

WORLD = 2
# Tiny but real: hidden 16, second-order MAML through 2 inner steps, meta-lstm's clipping active.
OPTIONS = {"hidden": 16, "inner_steps": 2, "test_inner_steps": 2, "relation_hidden": 4}
TRAINABLE = [a for a in available() if not learner_class(a).not_distributable]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dataset():
    return synthetic_glyphs(n_classes=10, drawings=6, seed=3)


def _one_step(algorithm: str, dataset, step) -> dict:
    """Build the learner as `train` does, make one meta-step with ``step``; gradients, weights, stats."""
    torch.manual_seed(0)
    accepted = learner_class(algorithm).hyperparameters()
    learner = create_learner(algorithm, **{k: v for k, v in OPTIONS.items() if k in accepted})
    learner.prepare_training(dataset)
    distributed.prepare(learner)
    tasks = TaskSampler(dataset, 5, 1, 3, seed=0).sample_batch(4)
    stats = step(learner, tasks)
    return {
        "grads": {n: p.grad.clone() for n, p in learner.named_parameters() if p.grad is not None},
        "state": {k: v.clone() for k, v in learner.state_dict().items() if torch.is_tensor(v)},
        "buffers": [n for n, _ in learner.named_buffers()],
        "stats": torch.tensor([stats.loss, stats.accuracy], dtype=torch.float64),
    }


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD)
    )
    torch.set_num_threads(1)
    distributed.setup(torch.device("cpu"))
    try:
        dataset = _dataset()
        results = {a: _one_step(a, dataset, distributed.meta_train_step) for a in TRAINABLE}
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        distributed.cleanup()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> list[dict]:
    """One meta-step of every supported algorithm, on each of 2 gloo ranks."""
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("algorithm", TRAINABLE)
def test_two_processes_make_the_meta_step_of_one(two_processes, algorithm):
    dataset = _dataset()
    single = _one_step(algorithm, dataset, lambda learner, tasks: learner.meta_train_step(tasks))
    rank0, rank1 = (r[algorithm] for r in two_processes)
    # The ranks hold bit-identical gradients, weights and buffers: the all-reduce hands each the same sum.
    for key in ("grads", "state"):
        assert rank0[key].keys() == rank1[key].keys() == single[key].keys()
        for name in rank0[key]:
            assert torch.equal(rank0[key][name], rank1[key][name]), name
    torch.testing.assert_close(rank0["stats"], single["stats"], rtol=1e-5, atol=1e-6)
    if not single["grads"]:
        return  # nothing to meta-train (pixel-nn, scratch)
    # ... and the single process's on the whole batch, up to the order of float sums. Gradients that
    # are zero in exact arithmetic (conv biases ahead of batch norm) are float noise of the size of the
    # large ones' rounding, so the tolerance is relative to the largest gradient: a single process
    # given the same tasks in another order differs by up to 6e-4 of it (protonet), 2 processes by 5e-4.
    scale = max(g.abs().max() for g in single["grads"].values())
    for name, g in single["grads"].items():
        torch.testing.assert_close(rank0["grads"][name], g, rtol=1e-4, atol=2e-3 * scale, msg=f"{algorithm} {name}")
    # Buffers (batch-norm running statistics, pretrained's mean feature) after the step. The weights
    # follow from the gradients; they are not compared, since Adam's first step, about lr * sign(gradient),
    # turns the noise of the exactly-zero gradients into steps of +-lr.
    for name, value in single["state"].items():
        if name in single["buffers"] and value.is_floating_point():
            torch.testing.assert_close(rank0["state"][name], value, rtol=1e-4, atol=1e-6, msg=f"{algorithm} {name}")
    # The check has teeth: one rank's share alone gives another gradient.
    half = _one_step(algorithm, dataset, lambda learner, tasks: learner.meta_train_step(tasks.split(WORLD, 0)))
    assert any(
        not torch.allclose(half["grads"][n], g, rtol=1e-4, atol=2e-2 * scale) for n, g in single["grads"].items()
    )


def test_what_cannot_split_exactly_is_refused_with_the_reason(monkeypatch):
    monkeypatch.setattr(distributed, "world", lambda: 2)
    with pytest.raises(ValueError, match="--meta-batch 5 does not divide among 2 processes"):
        distributed.check("protonet", 5)
    with pytest.raises(ValueError, match="mann cannot meta-train on several processes: it draws"):
        distributed.check("mann", 4)
    distributed.check("maml", 4)
    tasks = TaskSampler(_dataset(), 5, 1, 1, seed=0).sample_batch(3)
    with pytest.raises(ValueError, match="a meta-batch of 3 tasks does not divide among 2 processes"):
        distributed.shard(tasks)


def _fake_omniglot(root: Path) -> Path:
    """Synthetic glyphs in Omniglot's folder layout: 6 background alphabets (lake: the 6th validates), 1 evaluation."""
    glyphs = synthetic_glyphs(n_classes=35, drawings=20, seed=5).images
    for c in range(len(glyphs)):
        set_name, alphabet = ("images_background", f"alphabet{c // 5}") if c < 30 else ("images_evaluation", "eval")
        folder = root / set_name / alphabet / f"character{c % 5:02d}"
        folder.mkdir(parents=True)
        for d, image in enumerate(glyphs[c]):
            Image.fromarray(255 - image.numpy()).save(folder / f"{c:02d}_{d:02d}.png")  # Omniglot: black ink on white
    return root


# Runs `python -m playground` after wrapping save_checkpoint to record which rank wrote what.
SPY = """
import os, runpy, playground.training.loop as loop
save = loop.save_checkpoint
def spy(path, *args, **kwargs):
    with open(os.path.join(os.environ["SPY_DIR"], "rank" + os.environ["RANK"]), "a") as f:
        f.write(os.path.basename(path) + "\\n")
    return save(path, *args, **kwargs)
loop.save_checkpoint = spy
runpy.run_module("playground", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow  # real torchrun training runs
def test_torchrun_trains_and_resumes_like_one_process(tmp_path, monkeypatch):
    from playground.cli import main
    from playground.data.omniglot import load_omniglot
    from playground.zoo.checkpoints import read_checkpoint

    data, cache = _fake_omniglot(tmp_path / "omniglot"), tmp_path / "cache"
    load_omniglot(data, cache)  # the ranks then read the cache instead of racing to write it
    monkeypatch.setenv("PLAYGROUND_CACHE", str(cache))
    # pretrained steps with SGD, whose update is linear in the gradient, so the weights agree as
    # closely as the gradients (Adam turns the float noise of exactly-zero gradients into lr-sized steps).
    flags = "--algorithm pretrained --set hidden=16 --no-rotations --query 3 --meta-batch 4 --val-every 2"
    flags = [*flags.split(), "--val-episodes", "4", "--device", "cpu", "--data-dir", str(data)]
    # 2 iterations, then resumed to 4 (the schedule stretches to the new length): on one process ...
    single = tmp_path / "single"
    for more in (["--iterations", "2"], ["--iterations", "4", "--resume", str(single / "last.pt")]):
        assert main(["train", *flags, "--out", str(single), *more]) == 0

    spies, out = tmp_path / "spies", tmp_path / "two"
    spies.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SPY_DIR": str(spies), "PYTHONPATH": str(Path.cwd())}
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}"]
    torchrun += ["--master_addr=127.0.0.1", f"--master_port={_free_port()}", "--no-python", sys.executable, "-c", SPY]
    train = ["train", *flags, "--out", str(out)]
    # ... and on two.
    for more in (["--iterations", "2"], ["--iterations", "4", "--resume", str(out / "last.pt")]):
        r = subprocess.run([*torchrun, *train, *more], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.count("best checkpoint:") == 1, r.stdout + r.stderr  # rank 0 alone speaks

    assert sorted(p.name for p in spies.iterdir()) == ["rank0"]  # rank 1 never wrote a checkpoint
    assert sorted(set((spies / "rank0").read_text().split())) == ["best.pt", "last.pt"]
    logs = [[json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()] for d in (single, out)]
    assert [e["iteration"] for e in logs[1]] == [e["iteration"] for e in logs[0]] == [2, 4]
    want, got = (read_checkpoint(d / "last.pt") for d in (single, out))
    assert "x 2 processes" in got.training["hardware"]
    assert want.state_dict.keys() == got.state_dict.keys()
    for name, value in want.state_dict.items():
        if value.is_floating_point():
            torch.testing.assert_close(got.state_dict[name], value, rtol=1e-4, atol=1e-6, msg=name)
        else:
            assert torch.equal(got.state_dict[name], value), name
    for one, two in zip(*logs):
        assert one["loss"] == pytest.approx(two["loss"], rel=1e-5) and one["val_acc"] == two["val_acc"]


def test_under_torchrun_an_error_is_printed_by_rank_0_alone(monkeypatch, capsys):
    from playground.cli import main

    refused = ["train", "--algorithm", "protonet", "--inner-lr", "0.1", "--malloc", "default"]
    monkeypatch.setenv("WORLD_SIZE", str(WORLD))
    for rank in range(WORLD):
        monkeypatch.setenv("RANK", str(rank))
        assert main(refused) == 2  # every rank fails alike
        err = capsys.readouterr().err
        assert ("--inner-lr does not apply to --algorithm protonet" in err) == (rank == 0), (rank, err)

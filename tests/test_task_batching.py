"""`task_batching.choose` picks how a meta-batch runs; each learner runs the strategies its class declares."""

from __future__ import annotations

import pytest
import torch

from playground.algorithms import create_learner, learner_class
from playground.algorithms.maml import MAML
from playground.algorithms.task_batching import MODES, choose

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _pick(mode: str, device: torch.device, threads: int = 2, bn: str = "transductive", steps: int = 1, **can) -> str:
    return choose(mode, device, threads, bn, steps, grouped=can.get("grouped", True), compiled=True).name


@pytest.mark.parametrize(
    "device, threads, bn, steps, expected",
    [
        (CPU, 1, "transductive", 1, "loop"),
        (CPU, 2, "transductive", 1, "threads"),  # tasks side by side, one core each
        (CPU, 8, "transductive", 0, "threads"),
        (CUDA, 1, "transductive", 0, "vmap"),  # first order: exact under vmap
        (CUDA, 1, "transductive", 1, "grouped"),  # vmap's batch-norm double backward is off
        (CUDA, 4, "transductive", 5, "grouped"),
        (CUDA, 1, "per_example", 2, "vmap"),  # each image its own statistics: vmap is exact
    ],
)
def test_auto_picks_the_documented_strategy(device, threads, bn, steps, expected):
    assert _pick("auto", device, threads, bn, steps) == expected


def test_auto_falls_back_to_the_loop_where_the_learner_cannot_be_grouped():
    assert _pick("auto", CUDA, steps=1, grouped=False) == "loop"
    assert _pick("auto", CUDA, steps=0, grouped=False) == "vmap"
    assert _pick("auto", CPU, threads=2, grouped=False) == "threads"


def test_an_explicit_mode_is_kept_except_vmap_where_it_is_inexact():
    for mode in ("loop", "grouped", "threads", "compiled"):
        assert _pick(mode, CPU, steps=2) == _pick(mode, CUDA, steps=2) == mode
    assert _pick("vmap", CUDA, steps=1) == "vmap"  # asked for, and one second-order step is allowed
    assert _pick("vmap", CUDA, steps=2) == "loop"
    assert _pick("vmap", CUDA, bn="per_example", steps=2) == "vmap"


def test_a_mode_the_learner_cannot_run_is_refused():
    with pytest.raises(ValueError, match="one of"):
        _pick("fastest", CPU)
    with pytest.raises(ValueError, match="grouped"):
        _pick("grouped", CPU, grouped=False)
    with pytest.raises(ValueError, match="grouped"):
        _pick("grouped", CPU, bn="per_example")
    with pytest.raises(ValueError, match="compiled"):
        choose("compiled", CPU, 2, "transductive", 1, grouped=True, compiled=False)


@pytest.mark.parametrize(
    "algorithm, grouped, compiled",
    [("maml", True, True), ("metasgd", True, False), ("anil", False, True), ("meta-lstm", False, False)],
)
def test_each_learner_takes_the_paths_its_class_declares(algorithm, grouped, compiled):
    cls = learner_class(algorithm)
    assert (cls.runs_grouped, cls.runs_compiled) == (grouped, compiled)
    # Second-order training on CUDA: the grouped network where the learner runs grouped, else the loop.
    expected = "grouped" if grouped else "loop"
    assert create_learner(algorithm, hidden=8).batching_strategy(CUDA, 1).name == expected
    for mode, allowed in (("grouped", grouped), ("compiled", compiled)):
        if allowed:
            assert create_learner(algorithm, hidden=8, task_batching=mode).batching_strategy(CPU).name == mode
        else:
            with pytest.raises(ValueError, match=mode):
                create_learner(algorithm, hidden=8, task_batching=mode)


def test_reptile_compiles_its_fit_and_is_never_grouped():
    assert (learner_class("reptile").runs_grouped, learner_class("reptile").runs_compiled) == (False, True)
    with pytest.raises(ValueError, match="grouped"):
        create_learner("reptile", task_batching="grouped")


def test_a_subclass_that_declares_it_cannot_be_grouped_trains_in_the_loop():
    class OwnInnerLoop(MAML):
        name = "own-inner-loop-for-a-test"
        runs_grouped = False

    assert MAML(hidden=8).batching_strategy(CUDA, 1).name == "grouped"
    assert OwnInnerLoop(hidden=8).batching_strategy(CUDA, 1).name == "loop"


def test_a_body_without_the_fast_conv4_forward_is_not_grouped():
    learner = create_learner("maml", hidden=8, backbone="resnet12")
    assert learner.batching_strategy(CUDA, 1).name == "loop"
    with pytest.raises(ValueError, match="grouped"):
        create_learner("maml", hidden=8, backbone="resnet12", task_batching="grouped")


def test_the_cli_offers_the_modes_declared_here():
    from playground.cli import build_parser
    from playground.cli.train import learner_options

    assert MAML.hyperparameters()["task_batching"] == MODES[0] == "auto"
    for mode in MODES:
        args = build_parser().parse_args(["train", "--algorithm", "maml", "--task-batching", mode])
        assert learner_options(args) == {"task_batching": mode}

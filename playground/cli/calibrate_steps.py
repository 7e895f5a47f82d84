"""``calibrate-steps``: choose a gradient-based checkpoint's test-time inner steps on meta-validation."""

from __future__ import annotations

import argparse

from playground.algorithms.test_time import TestTimeSettings
from playground.cli.common import (
    add_data_dir_flag,
    add_device_flag,
    add_malloc_flag,
    add_threads_flag,
    non_negative,
    positive,
    positive_float,
)
from playground.cli.measuring import evaluate_with_bar, refuse_seen_classes, splits_loader
from playground.evaluation.few_shot import STANDARD_QUERIES
from playground.runtime.device import resolve_device
from playground.zoo.checkpoints import learner_from_checkpoint, read_checkpoint, save_checkpoint

NAME = "calibrate-steps"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    c = subparsers.add_parser(
        NAME, help="choose a gradient-based checkpoint's test-time inner steps on meta-validation"
    )
    c.add_argument("checkpoint")
    c.add_argument("--candidates", type=non_negative("--candidates"), nargs="+", default=[1, 2, 3, 5, 10])
    c.add_argument(
        "--inner-lrs",
        type=positive_float("--inner-lrs"),
        nargs="+",
        default=None,
        help="step sizes to try with every candidate (default: the checkpoint's own); the checkpoint keeps no "
        "test-time step size, so with this, --no-write: give the choice to evaluate --inner-steps --inner-lr",
    )
    c.add_argument("--ways", type=positive("--ways"), default=5)
    c.add_argument("--shots", type=positive("--shots"), default=1)
    c.add_argument("--episodes", type=positive("--episodes"), default=300)
    c.add_argument("--seed", type=int, default=1)
    add_device_flag(c)
    add_data_dir_flag(c)
    c.add_argument(
        "--no-write",
        action="store_true",
        help="print the choice and leave the checkpoint as it is: for another setting's steps, given to "
        "evaluate --inner-steps",
    )
    add_malloc_flag(c)
    add_threads_flag(c)
    return c


def run(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    ckpt = read_checkpoint(args.checkpoint)  # read once: the learner and its protocol both come from it
    learner = learner_from_checkpoint(ckpt, device)
    # It chooses the checkpoint's own steps, at its own rate unless --inner-lrs: not those its card chose.
    learner.test_time = TestTimeSettings()
    if not learner.adapts_with("n_steps"):
        # asked of adapt_options, not the config: a ProtoNet-style head keeps test_inner_steps it never uses
        raise ValueError(f"{args.checkpoint} ({learner.name}) has no inner loop to calibrate")
    if not args.no_write and "test_inner_steps" not in learner.config():
        raise ValueError(
            f"{learner.name} keeps no test-time steps of its own to write: use --no-write, then give the choice "
            "to evaluate --inner-steps N"
        )
    if args.inner_lrs and not args.no_write:
        raise ValueError(
            "--inner-lrs needs --no-write: a checkpoint keeps no test-time step size, so give the choice to "
            "evaluate --inner-steps N --inner-lr LR"
        )
    protocol = ckpt.protocol
    splits_of = splits_loader(args.data_dir)
    # Its own validation split holds no training class, unless it was fine-tuned from another protocol's model.
    refuse_seen_classes(ckpt, protocol, "val", splits_of)
    val = splits_of(protocol).val.to(device)
    rates = args.inner_lrs or [None]
    scores: dict[tuple[int, float | None], float] = {}
    for lr in rates:
        for steps in args.candidates:
            label = f"{steps:>3} steps" + ("" if lr is None else f" of {lr:g}")
            res = evaluate_with_bar(
                label,
                learner,
                val,
                args.ways,
                args.shots,
                STANDARD_QUERIES,
                args.episodes,
                seed=args.seed,
                n_steps=steps,
                inner_lr=lr,
            )
            scores[steps, lr] = res.mean
            print(f"{label}: {res.format()} on {protocol}/val", flush=True)
    # Ties go to fewer steps, then to the first rate given.
    (best, best_lr), _ = max(scores.items(), key=lambda kv: (kv[1], -kv[0][0], -rates.index(kv[0][1])))
    if args.no_write:
        rate = "" if best_lr is None else f" of {best_lr:g} (evaluate --inner-steps {best} --inner-lr {best_lr:g})"
        print(f"best for {args.ways}-way {args.shots}-shot: {best} steps{rate} (not written)")
        return
    steps_scores = {steps: v for (steps, _), v in scores.items()}
    learner.test_inner_steps = best
    extra = dict(ckpt.extra)
    training = {**ckpt.training, "calibrated_test_inner_steps": {str(k): v for k, v in steps_scores.items()}}
    save_checkpoint(args.checkpoint, learner, training=training, optimizer=ckpt.optimizer, **extra)
    print(f"test_inner_steps = {best} written to {args.checkpoint}")

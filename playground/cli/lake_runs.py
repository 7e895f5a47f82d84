"""``lake-runs``: the error on Lake et al.'s 20 one-shot runs (or runs built like them on validation)."""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from playground.cli.common import (
    add_adaptation_flags,
    add_data_dir_flag,
    add_device_flag,
    add_malloc_flag,
    add_threads_flag,
    command_line,
    positive,
    work_starts,
)
from playground.cli.measuring import check_adapt_flags
from playground.evaluation.few_shot import confidence_interval_95
from playground.lake.runs import (
    HUMAN_ERROR,
    error_percent,
    evaluate_lake_runs,
    lake_settings,
    load_lake_runs,
    validation_runs,
)
from playground.runtime.device import resolve_device
from playground.zoo.checkpoints import learner_from_checkpoint, read_checkpoint
from playground.zoo.reporting import record_lake_runs, setting_text

NAME = "lake-runs"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    r = subparsers.add_parser(NAME, help="error on Lake's 20 one-shot runs, beside people's 4.5%%")
    r.add_argument("checkpoints", nargs="+")
    add_adaptation_flags(
        r,
        "the card's Lake figure",
        several="with --validation, several to compare, each step count with each step size",
    )
    add_device_flag(r)
    add_data_dir_flag(r)
    r.add_argument("--card", action="store_true", help="write the result into each model card")
    r.add_argument(
        "--one-to-one",
        action="store_true",
        help="decide each run's 20 test drawings together, each training drawing used once (transductive; "
        "not comparable with people's figure, and never written into a card)",
    )
    r.add_argument(
        "--validation",
        type=positive("--validation"),
        default=None,
        metavar="N",
        help="instead of Lake's runs, N runs built the same way from the meta-validation alphabets, to choose "
        "settings on without tuning on Lake's (never written into a card)",
    )
    add_malloc_flag(r)
    add_threads_flag(r)
    return r


def run(args: argparse.Namespace) -> None:
    if args.one_to_one and args.card:
        raise ValueError("--one-to-one figures are not the standard protocol: they are never written into a card")
    if args.validation and args.card:
        raise ValueError("--validation runs are for choosing settings: they are never written into a card")
    steps_list = args.inner_steps or [None]
    rates = args.inner_lr or [None]
    if len(steps_list) * len(rates) > 1 and not args.validation:
        # Comparing settings on Lake's own runs would tune on the test: choose on validation runs.
        several = "--inner-steps" if len(steps_list) > 1 else "--inner-lr"
        values = steps_list if len(steps_list) > 1 else rates
        raise ValueError(
            f"several {several} ({' '.join(f'{v:g}' for v in values)}) are for choosing on --validation runs; "
            "give one for Lake's runs"
        )
    checkpoints = [(path, read_checkpoint(path)) for path in args.checkpoints]  # read once, checked before any data
    for path, ckpt in checkpoints:
        # Its own protocol or, fine-tuned, a base's: the vinyals split trains on characters of every
        # alphabet, Lake's runs' and the meta-validation ones included.
        protocol = next((p for p in ckpt.trained_protocols if p != "lake"), None)
        if protocol is not None:
            raise ValueError(
                f"{path} was trained on the {protocol} split, which includes characters of these runs' "
                "alphabets: its error on them would not be a test. Use a lake-protocol checkpoint."
            )
    device = resolve_device(args.device)
    learners = [learner_from_checkpoint(ckpt, device) for _, ckpt in checkpoints]
    for (path, _), learner in zip(checkpoints, learners):
        check_adapt_flags(learner, f"{path} ({learner.name})", n_steps=args.inner_steps, inner_lr=args.inner_lr)
    if args.validation:
        from playground.data.omniglot import load_omniglot

        runs = validation_runs(load_omniglot(args.data_dir), args.validation)
        print(f"{args.validation} runs built like Lake's from the meta-validation alphabets (people: not measured)")
    else:
        runs = load_lake_runs(Path(args.data_dir) if args.data_dir else None)
        print(f"{'people':<24} {error_percent(HUMAN_ERROR):>5}% error")
    work_starts()
    for (path, _), learner in zip(checkpoints, learners):
        for steps, lr in itertools.product(steps_list, rates):
            res = evaluate_lake_runs(learner, runs, n_steps=steps, inner_lr=lr, one_to_one_assignment=args.one_to_one)
            if args.validation:
                spread = confidence_interval_95(res.run_errors)
                detail = f"± {100 * spread:.1f} (95% CI over {len(runs)} runs)"
            else:
                detail = f"(runs: {' '.join(f'{100 * e:.0f}' for e in res.run_errors)})"
            label = learner.name + " " + Path(path).name + setting_text(steps, lr)
            print(f"{label:<24} {error_percent(res.error):>5}% error  {detail}", flush=True)
            if args.card:
                # the settings it adapted with, given or from the card; none recorded: the learner's own
                used = lake_settings(learner, steps, lr)
                record_lake_runs(path, res, used, command_line(args), device)

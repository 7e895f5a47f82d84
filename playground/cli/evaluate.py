"""``evaluate``: a checkpoint's accuracy with its 95% CI, optionally written into its model card."""

from __future__ import annotations

import argparse
import sys

from playground.cli.common import (
    add_adaptation_flags,
    add_data_dir_flag,
    add_device_flag,
    add_malloc_flag,
    add_threads_flag,
    command_line,
    positive,
)
from playground.cli.measuring import (
    check_adapt_flags,
    check_dataset_fits,
    evaluate_with_bar,
    refuse_seen_classes,
    splits_loader,
)
from playground.data.datasets import ALL_PROTOCOLS, DATASET_NAMES, dataset_of_protocol
from playground.data.datasets import dataset as dataset_info
from playground.evaluation.few_shot import EVALUATION_SPLITS, STANDARD_QUERIES
from playground.runtime.device import resolve_device
from playground.zoo.checkpoints import learner_from_checkpoint, read_checkpoint
from playground.zoo.reporting import evaluation_result, queries_text, record_results

NAME = "evaluate"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    e = subparsers.add_parser(NAME, help="accuracy of a checkpoint with its 95%% CI")
    e.add_argument("checkpoint")
    e.add_argument("--ways", type=positive("--ways"), nargs="+", default=[5])
    e.add_argument("--shots", type=positive("--shots"), nargs="+", default=[1])
    e.add_argument(
        "--query",
        type=positive("--query"),
        default=STANDARD_QUERIES,
        help=f"queries per class (default {STANDARD_QUERIES}, as every card's figures; --card keeps another count's "
        "figures beside those, as the papers' row of `report --papers` compares them)",
    )
    e.add_argument("--episodes", type=positive("--episodes"), default=600)
    add_adaptation_flags(
        e,
        "the model card's figure nearest each task size",
        rate_note="; Meta-SGD and the Meta-LSTM scale their learned steps by --inner-lr / inner_lr; choose it on "
        "validation with calibrate-steps --inner-lrs",
    )
    e.add_argument("--dataset", choices=DATASET_NAMES, default=None, help="default: the checkpoint's")
    e.add_argument("--protocol", choices=ALL_PROTOCOLS, default=None, help="default: the checkpoint's or the dataset's")
    e.add_argument("--split", choices=EVALUATION_SPLITS, default="test")
    e.add_argument("--seed", type=int, default=0)
    add_device_flag(e)
    add_data_dir_flag(e)
    e.add_argument("--card", action="store_true", help="write the results into the model card beside the checkpoint")
    e.add_argument(
        "--allow-training-classes",
        action="store_true",
        help="evaluate even on a split holding characters the checkpoint was trained on (another --protocol's): "
        "the figures are marked contaminated, and never written into a card",
    )
    add_malloc_flag(e)
    add_threads_flag(e)
    return e


def run(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    ckpt = read_checkpoint(args.checkpoint)  # read once: the learner and its protocol both come from it
    learner = learner_from_checkpoint(ckpt, device)
    check_adapt_flags(learner, learner.name, n_steps=args.inner_steps, inner_lr=args.inner_lr)
    name = args.dataset or (dataset_of_protocol(args.protocol) if args.protocol else ckpt.dataset)
    protocol = args.protocol or (ckpt.protocol if name == ckpt.dataset else dataset_info(name).protocols[0])
    check_dataset_fits(learner, name)
    splits_of = splits_loader(args.data_dir, name)
    overlap = refuse_seen_classes(ckpt, protocol, args.split, splits_of, allow=args.allow_training_classes)
    if overlap is not None and args.card:
        raise ValueError(f"--card: {overlap.describe()}; a contaminated figure is never written into a card")
    if overlap is not None:
        print(f"WARNING: {overlap.describe()}: the figures below are contaminated", file=sys.stderr)
    splits = splits_of(protocol)
    dataset = (splits.test if args.split == "test" else splits.val).to(device)
    results = []
    for ways in args.ways:
        if ways > dataset.num_classes:
            raise ValueError(
                f"--ways {ways} is more than the {dataset.num_classes} classes of the {protocol} {args.split} split"
            )
        for shots in args.shots:
            if shots + 1 > dataset.drawings_per_class:
                raise ValueError(
                    f"--shots {shots} leaves no drawing for a query ({dataset.drawings_per_class} per class)"
                )
            res = evaluate_with_bar(
                f"{ways}-way {shots}-shot",
                learner,
                dataset,
                ways,
                shots,
                args.query,
                args.episodes,
                seed=args.seed,
                n_steps=args.inner_steps,
                inner_lr=args.inner_lr,
            )
            queries = "" if args.query == STANDARD_QUERIES else f" of {queries_text(res.n_query)}"
            seen = "" if overlap is None else f" (CONTAMINATED: {len(overlap.seen)} characters seen in training)"
            print(
                f"{learner.name} {protocol}/{args.split} {ways}-way {shots}-shot, "
                f"{res.episodes} episodes{queries}: {res.format()}{seen}",
                flush=True,
            )
            # The settings it adapted with, given or from the card (`MetaLearner.settings_for`); none: its own.
            used = learner.settings_for(ways, shots, args.inner_steps, args.inner_lr)
            results.append(
                evaluation_result(
                    res, protocol=protocol, split=args.split, seed=args.seed, settings=used, command=command_line(args)
                )
            )
            if args.card:  # after every setting, so an interrupted evaluation keeps what it measured
                other = args.query != STANDARD_QUERIES  # the tables' cells are the standard count's
                path = record_results(args.checkpoint, results, device, other_queries=other)
    if args.card:
        print(f"model card: {path}")

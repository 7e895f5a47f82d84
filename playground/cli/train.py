"""``train``: meta-train an algorithm, or resume a run."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from playground.algorithms import available, learner_class
from playground.algorithms.base import BACKBONES
from playground.algorithms.maml import HEADS, MEMORY_FORMATS
from playground.algorithms.protonet import METRICS
from playground.algorithms.task_batching import MODES as TASK_BATCHING
from playground.cli.common import (
    add_data_dir_flag,
    add_device_flag,
    add_malloc_flag,
    add_threads_flag,
    command_line,
    non_negative,
    positive,
    positive_float,
    probability,
    work_starts,
)
from playground.data.datasets import ALL_PROTOCOLS, DATASET_NAMES
from playground.data.datasets import dataset as dataset_info
from playground.data.omniglot import default_data_dir
from playground.runtime import distributed
from playground.runtime.precision import PRECISIONS
from playground.training import RESUME_SETTINGS, TrainConfig, as_flag, train

NAME = "train"

# CLI flag -> learner hyperparameter, for flags that configure the algorithm itself.
LEARNER_FLAGS = {
    "inner_lr": "--inner-lr",
    "inner_steps": "--inner-steps",
    "test_inner_steps": "--test-inner-steps",
    "first_order": "--first-order",
    "outer_lr": "--outer-lr",
    "metric": "--metric",
    "head": "--head",
    "task_batching": "--task-batching",
    "memory_format": "--memory-format",
    "backbone": "--backbone",
    "hidden": "--hidden",
}

# The flags a resume takes; every other setting is the saved run's own.
# --malloc and --threads: the process, not the run.
RESUME_FLAGS = {"--resume", "--malloc", "--threads", *map(as_flag, RESUME_SETTINGS)}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    t = subparsers.add_parser(NAME, help="meta-train an algorithm")
    t.add_argument("--algorithm", default="protonet", choices=available())
    t.add_argument("--dataset", default="omniglot", choices=DATASET_NAMES, help="default omniglot (docs/datasets.md)")
    t.add_argument(
        "--protocol",
        default=None,
        choices=ALL_PROTOCOLS,
        help="the dataset's split (default: its first: lake, ravi, ...)",
    )
    t.add_argument("--ways", type=positive("--ways"), default=5, help="ways of validation/test episodes")
    t.add_argument(
        "--train-ways", type=positive("--train-ways"), default=None, help="ways of training episodes (default: --ways)"
    )
    t.add_argument("--shots", type=positive("--shots"), default=1, help="shots of validation/test episodes")
    t.add_argument(
        "--train-shots",
        type=positive("--train-shots"),
        default=None,
        help="shots of training episodes (default: --shots)",
    )
    t.add_argument("--query", type=positive("--query"), default=15)
    t.add_argument("--meta-batch", type=positive("--meta-batch"), default=32)
    t.add_argument("--iterations", type=positive("--iterations"), default=10000)
    t.add_argument("--val-every", type=positive("--val-every"), default=500)
    t.add_argument(
        "--save-every",
        type=non_negative("--save-every"),
        default=TrainConfig.save_every,
        help="also write last.pt every N iterations, so a run killed outright loses at most N (0: at validation "
        "only); Ctrl-C or SIGTERM stops after the iteration in progress, with it in last.pt "
        "(default: %(default)s)",
    )
    t.add_argument("--val-episodes", type=positive("--val-episodes"), default=200)
    t.add_argument("--no-rotations", action="store_true", help="no 90-degree rotations as extra training classes")
    t.add_argument(
        "--augment-shift",
        type=non_negative("--augment-shift"),
        default=0,
        help="move each training image by a random offset of up to this many pixels each way (default 0: off)",
    )
    t.add_argument(
        "--augment-style",
        type=probability("--augment-style"),
        default=TrainConfig.augment_style,
        metavar="P",
        help="draw each training image, with probability P, as one of its drawing's style-shifted variants (a pen, "
        "a hand, paper, a phone photo, JPEG: docs/style_shift.md), made once from the background alphabets and "
        "cached (default %(default)s: off)",
    )
    t.add_argument(
        "--style-variants",
        type=positive("--style-variants"),
        default=TrainConfig.style_variants,
        help="shifted variants per drawing in the bank --augment-style draws from (default %(default)s)",
    )
    t.add_argument(
        "--within-alphabet",
        action="store_true",
        help="draw each training episode's classes from one alphabet (hard, as in Lake's runs)",
    )
    t.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="bf16: meta-training steps under bfloat16 autocast, faster on a CPU with AVX-512 BF16 or a GPU "
        "(bench.time_to_accuracy measures it); weights, optimizer and validation stay float32 (default fp32)",
    )
    t.add_argument(
        "--no-colour-augment", action="store_true", help="colour datasets: no random crop, flip or colour jitter"
    )
    t.add_argument(
        "--backbone", choices=BACKBONES, help="conv4 (default) or resnet12 (widths 64-160-320-640 x hidden/64)"
    )
    t.add_argument(
        "--hidden", type=positive("--hidden"), help="filters of Conv-4 (papers: 64; MAML on mini-ImageNet: 32)"
    )
    t.add_argument("--inner-lr", type=positive_float("--inner-lr"))
    t.add_argument("--inner-steps", type=non_negative("--inner-steps"))
    t.add_argument("--test-inner-steps", type=non_negative("--test-inner-steps"))
    t.add_argument("--first-order", action="store_true", default=None)
    t.add_argument("--outer-lr", type=positive_float("--outer-lr"))
    t.add_argument("--metric", choices=METRICS)
    t.add_argument("--head", choices=HEADS)
    t.add_argument(
        "--task-batching",
        choices=TASK_BATCHING,
        help="how MAML-family learners run a meta-batch of tasks (auto: threads on a CPU with several torch "
        "threads, else loop; vmap, or grouped convolutions for second order with transductive batch norm, on "
        "CUDA; threads: tasks side by side, one CPU thread each; compiled: each task's meta-gradient (MAML) "
        "or fit (Reptile) compiled by torch.compile, after a wait for the compiling (bench.maml_speed times "
        "it); for MAML fastest on a CPU with --memory-format channels_last)",
    )
    t.add_argument(
        "--memory-format",
        choices=MEMORY_FORMATS,
        help="MAML-family activation layout; channels_last is faster on CPU (see bench.maml_speed)",
    )
    t.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other hyperparameter of the algorithm, e.g. --set fce=true (repeatable)",
    )
    t.add_argument("--seed", type=int, default=0)
    add_device_flag(t)
    add_data_dir_flag(t, help=f"the dataset's folder (Omniglot's default {default_data_dir()}; docs/datasets.md)")
    t.add_argument("--out", default="runs/latest", help="folder for best.pt, last.pt and log.jsonl")
    t.add_argument(
        "--resume",
        default=None,
        help="continue a run from its last.pt, or train a shipped model on; the saved run's settings are kept",
    )
    t.add_argument(
        "--init-from", default=None, help="start from this checkpoint's weights (same architecture), e.g. to fine-tune"
    )
    add_malloc_flag(t)
    add_threads_flag(t)
    return t


def parse_value(text: str) -> Any:
    """--set values: JSON where it parses (numbers, true/false, null), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def learner_options(args: argparse.Namespace) -> dict[str, Any]:
    """The learner hyperparameters the flags and ``--set`` give; refuses those ``--algorithm`` does not take."""
    given = {k: getattr(args, k) for k in LEARNER_FLAGS if getattr(args, k, None) is not None}
    accepted = learner_class(args.algorithm).hyperparameters()
    wrong = [LEARNER_FLAGS[k] for k in given if k not in accepted]
    for item in getattr(args, "set", []):
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {item!r}")
        if key not in accepted or key == "n_way":
            wrong.append(f"--set {key}")
            continue
        given[key] = parse_value(value)
    if wrong:
        options = ", ".join(k for k in accepted if k != "n_way")
        raise ValueError(f"{', '.join(wrong)} does not apply to --algorithm {args.algorithm} (its options: {options})")
    return given


def typed_flags(argv: list[str]) -> list[str]:
    """The long options on a command line, as typed (``--x=1`` counts as ``--x``), in order, once each."""
    flags = [token.partition("=")[0] for token in argv if token.startswith("--")]
    return list(dict.fromkeys(flags))


def run(args: argparse.Namespace) -> None:
    command = command_line(args)
    if args.resume:
        # Not validated against --algorithm's default: the algorithm and its settings are the checkpoint's.
        typed = typed_flags(args.argv)
        # Without --iterations the saved run's own count stands (train keeps the larger of the two).
        iterations = args.iterations if "--iterations" in typed else 0
        cfg = TrainConfig(
            iterations=iterations,
            device=args.device,
            out=args.out,
            data_dir=args.data_dir,
            save_every=args.save_every,
            command=command,
        )
        ignored = [f for f in typed if f not in RESUME_FLAGS]
        _run_training(cfg, args.resume, ignored, args)
        return
    cfg = TrainConfig(
        algorithm=args.algorithm,
        dataset=args.dataset,
        protocol=args.protocol or dataset_info(args.dataset).protocols[0],
        colour_augment=not args.no_colour_augment,
        ways=args.ways,
        shots=args.shots,
        query=args.query,
        train_ways=args.train_ways,
        train_shots=args.train_shots,
        meta_batch=args.meta_batch,
        iterations=args.iterations,
        val_every=args.val_every,
        save_every=args.save_every,
        val_episodes=args.val_episodes,
        rotations=not args.no_rotations,
        augment_shift=args.augment_shift,
        augment_style=args.augment_style,
        style_variants=args.style_variants,
        within_alphabet=args.within_alphabet,
        precision=args.precision,
        seed=args.seed,
        device=args.device,
        out=args.out,
        data_dir=args.data_dir,
        learner=learner_options(args),
        init_from=args.init_from,
        command=command,
    )
    _run_training(cfg, None, [], args)


def _run_training(cfg: TrainConfig, resume: str | None, ignored: list[str], args: argparse.Namespace) -> None:
    def started() -> None:
        work_starts()
        # Said once training runs (not on a refused command): it changes speed, never results, so it
        # is on stderr, in no config and no model card.
        if getattr(args, "memory_kept", False):
            print("malloc: freed memory is kept for reuse (--malloc default for glibc's own settings)", file=sys.stderr)

    try:
        best = train(cfg, resume=resume, ignored=ignored, on_start=started)
        if distributed.is_main() and best is not None:
            print(f"best checkpoint: {best}")
    finally:
        distributed.cleanup()  # under torchrun; a no-op otherwise

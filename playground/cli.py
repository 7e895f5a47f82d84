"""`python -m playground train|evaluate|lake-runs|download`."""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import signal
import sys
from dataclasses import replace
from pathlib import Path

import torch

from playground import distributed, style_bench
from playground.algorithms import available, learner_class, task_batching
from playground.algorithms.base import BACKBONES
from playground.algorithms.plugins import PluginError, add_plugin_flag, load_plugins, plugin_flags
from playground.algorithms.test_time import TestTimeSettings
from playground.allocator import keep_freed_memory
from playground.card import LakeRuns, ModelCard, Result, TrainingRecord
from playground.checkpoints import (
    CheckpointError,
    learner_from_checkpoint,
    read_card,
    read_checkpoint,
    write_card,
)
from playground.data.datasets import ALL_PROTOCOLS, DATASET_NAMES, dataset_of_protocol, load_dataset_splits
from playground.data.datasets import dataset as dataset_info
from playground.data.download import base_url, download_data, megabytes, missing_files
from playground.data.omniglot import DataError, default_data_dir
from playground.device import DEVICES, resolve_device
from playground.evaluation import STANDARD_QUERIES
from playground.precision import PRECISIONS
from playground.threads import AUTO as AUTO_THREADS
from playground.threads import set_threads
from playground.training import RESUME_SETTINGS, TrainConfig, as_flag, hardware_description, make_card, train

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


def number(name: str, kind: type, ok, bound: str):
    """An argparse type: a ``kind`` (int or float) value for which ``ok(value)`` holds."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{name} must be {what}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, got {text}")
        return value

    return parse


def positive(name: str):
    return number(name, int, lambda v: v >= 1, "at least 1")


def positive_float(name: str):
    return number(name, float, lambda v: 0 < v < float("inf"), "a positive finite number")


def probability(name: str):
    return number(name, float, lambda v: 0 <= v <= 1, "a probability between 0 and 1")


def non_negative(name: str):
    return number(name, int, lambda v: v >= 0, "0 or more")


def add_malloc_flag(p: argparse.ArgumentParser, default: str = "keep") -> None:
    """``--malloc``, for the commands (and benchmarks) that compute for minutes to hours on a CPU."""
    p.add_argument(
        "--malloc",
        choices=["keep", "default"],
        default=default,
        help="keep: glibc's malloc keeps freed memory for reuse instead of returning it to the OS, sparing the "
        "kernel's page faults (faster steps; memory stays at its peak; bench/README.md measures it); default: "
        "glibc's own settings. Linux only; elsewhere nothing changes (default: %(default)s)",
    )


def _thread_count(text: str) -> int | str:
    if text == AUTO_THREADS:
        return text
    return positive("--threads")(text)


def add_threads_flag(p: argparse.ArgumentParser) -> None:
    """``--threads``, for the commands that compute on a CPU."""
    p.add_argument(
        "--threads",
        type=_thread_count,
        default=AUTO_THREADS,
        metavar="N|auto",
        help="torch CPU threads; auto: the CPUs this process may use less the load of other processes (1-minute "
        "average), at least 1, or OMP_NUM_THREADS where it is set: torch's own default, a thread per core, "
        "runs several times slower on a busy machine (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m playground", description="Meta-learning on Omniglot.")
    add_plugin_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="meta-train an algorithm")
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
    t.add_argument("--metric", choices=["euclidean", "cosine"])
    t.add_argument("--head", choices=["shared", "per_class"])
    t.add_argument(
        "--task-batching",
        choices=task_batching.MODES,
        help="how MAML-family learners run a meta-batch of tasks (auto: threads on a CPU with several torch "
        "threads, else loop; vmap, or grouped convolutions for second order with transductive batch norm, on "
        "CUDA; threads: tasks side by side, one CPU thread each; compiled: each task's meta-gradient (MAML) "
        "or fit (Reptile) compiled by torch.compile, about a minute of compiling first; for MAML fastest on a "
        "CPU with --memory-format channels_last)",
    )
    t.add_argument(
        "--memory-format",
        choices=["contiguous", "channels_last"],
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
    t.add_argument("--device", default="auto", choices=DEVICES)
    t.add_argument(
        "--data-dir",
        default=None,
        help=f"the dataset's folder (Omniglot's default {default_data_dir()}; docs/datasets.md)",
    )
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

    e = sub.add_parser("evaluate", help="accuracy of a checkpoint with its 95%% CI")
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
    e.add_argument(
        "--inner-steps",
        type=non_negative("--inner-steps"),
        default=None,
        help="adaptation steps (gradient-based; default: those of the model card's figure nearest each task size, "
        "else the checkpoint's own)",
    )
    e.add_argument(
        "--inner-lr",
        type=positive_float("--inner-lr"),
        default=None,
        help="adaptation step size (gradient-based; default: the model card's, as for --inner-steps, else the "
        "checkpoint's own inner_lr; Meta-SGD and the "
        "Meta-LSTM scale their learned steps by --inner-lr / inner_lr); choose it on validation with "
        "calibrate-steps --inner-lrs",
    )
    e.add_argument("--dataset", choices=DATASET_NAMES, default=None, help="default: the checkpoint's")
    e.add_argument("--protocol", choices=ALL_PROTOCOLS, default=None, help="default: the checkpoint's or the dataset's")
    e.add_argument("--split", choices=["test", "val"], default="test")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto", choices=DEVICES)
    e.add_argument("--data-dir", default=None)
    e.add_argument("--card", action="store_true", help="write the results into the model card beside the checkpoint")
    e.add_argument(
        "--allow-training-classes",
        action="store_true",
        help="evaluate even on a split holding characters the checkpoint was trained on (another --protocol's): "
        "the figures are marked contaminated, and never written into a card",
    )
    add_malloc_flag(e)
    add_threads_flag(e)

    r = sub.add_parser("lake-runs", help="error on Lake's 20 one-shot runs, beside people's 4.5%%")
    r.add_argument("checkpoints", nargs="+")
    r.add_argument(
        "--inner-steps",
        type=non_negative("--inner-steps"),
        nargs="+",
        default=None,
        help="adaptation steps (gradient-based; default: those of the card's Lake figure, else the checkpoint's "
        "own); with --validation, several to "
        "compare, e.g. 1 2 5 10 30; a card written with one records it",
    )
    r.add_argument(
        "--inner-lr",
        type=positive_float("--inner-lr"),
        nargs="+",
        default=None,
        help="adaptation step size (gradient-based; default: that of the card's Lake figure, as for --inner-steps); "
        "with "
        "--validation, several to try with every --inner-steps; a card written with one records it",
    )
    r.add_argument("--device", default="auto", choices=DEVICES)
    r.add_argument("--data-dir", default=None)
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

    c = sub.add_parser(
        "calibrate-steps", help="choose a gradient-based checkpoint's test-time inner steps on meta-validation"
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
    c.add_argument("--device", default="auto", choices=DEVICES)
    c.add_argument("--data-dir", default=None)
    c.add_argument(
        "--no-write",
        action="store_true",
        help="print the choice and leave the checkpoint as it is: for another setting's steps, given to "
        "evaluate --inner-steps",
    )
    add_malloc_flag(c)
    add_threads_flag(c)

    rp = sub.add_parser("report", help="the README's results table, from the model cards (no computation)")
    rp.add_argument("--dir", default=None, help="checkpoint folder (default assets/checkpoints)")
    rp.add_argument(
        "--papers", action="store_true", help="under each vinyals model, the published figures for its algorithm"
    )
    rp.add_argument(
        "--readme",
        default=None,
        metavar="FILE",
        help="also write the table into FILE (e.g. README.md) in place of its old copy: the table there with the "
        "same header and models",
    )

    en = sub.add_parser(
        "ensemble", help="combine trained checkpoints into one (log-probabilities averaged, over shifted views)"
    )
    en.add_argument("checkpoints", nargs="+", help="the members: trained checkpoints of one protocol")
    en.add_argument(
        "--view-shift",
        type=non_negative("--view-shift"),
        default=0,
        help="also average over every shift of up to this many pixels each way, support and query (0-3; 1: 9 views)",
    )
    en.add_argument(
        "--plain-support-for-steps",
        action="store_true",
        help="members with inner steps (MAML and kin) adapt to the plain support, not its shifted views (a ninth "
        "of their cost at --view-shift 1); their queries are still viewed",
    )
    en.add_argument("--out", required=True, help="the ensemble checkpoint, e.g. assets/checkpoints/NAME.pt")

    sh = sub.add_parser(
        "ship", help="copy a trained checkpoint and its model card without the resume state (optimizer, RNG)"
    )
    sh.add_argument("checkpoint")
    sh.add_argument("target", help="e.g. assets/checkpoints/NAME.pt")
    sh.add_argument("--note", default=None, help="the card's note: how the model was made, what it is for")

    ss = sub.add_parser(
        "style-shift",
        help="the style-shift benchmark: shipped models on shifted evaluation drawings (docs/style_shift.md)",
    )
    style_bench.add_arguments(ss)
    add_threads_flag(ss)

    d = sub.add_parser(
        "download", help="fetch Omniglot and Lake's runs into the data folder, checked against their checksums"
    )
    d.add_argument("--data-dir", default=None, help="default: $PLAYGROUND_DATA, else the folder the README names")

    s = sub.add_parser("sinusoid", help="sine-wave regression (MAML paper 5.1): MAML vs pretrained vs scratch")
    sa = s.add_subparsers(dest="action", required=True)
    st = sa.add_parser("train", help="train all three regressors, evaluate them, write checkpoint and card")
    st.add_argument("--out", default="assets/sinusoid/sinusoid.pt", help="checkpoint; the card goes beside it")
    st.add_argument("--iterations", type=positive("--iterations"), default=20000, help="meta-iterations of MAML")
    st.add_argument(
        "--pretrain-iterations", type=positive("--pretrain-iterations"), default=None, help="default: --iterations"
    )
    st.add_argument("--meta-batch", type=positive("--meta-batch"), default=25)
    st.add_argument("--shots", type=positive("--shots"), default=10, help="support points per training task")
    st.add_argument("--query", type=positive("--query"), default=10, help="query points per training task")
    st.add_argument("--inner-lr", type=positive_float("--inner-lr"), default=0.01)
    st.add_argument("--inner-steps", type=non_negative("--inner-steps"), default=1)
    st.add_argument("--outer-lr", type=positive_float("--outer-lr"), default=1e-3, help="Adam, MAML and pretrained")
    st.add_argument("--scratch-lr", type=positive_float("--scratch-lr"), default=0.02, help="scratch's step size")
    st.add_argument("--first-order", action="store_true")
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--eval-tasks", type=positive("--eval-tasks"), default=600)
    st.add_argument("--eval-steps", type=non_negative("--eval-steps"), nargs="+", default=[0, 1, 10, 100])
    se = sa.add_parser("evaluate", help="mean MSE with 95%% CI over seeded test tasks")
    se.add_argument("checkpoint")
    se.add_argument("--tasks", type=positive("--tasks"), default=600)
    se.add_argument("--shots", type=positive("--shots"), nargs="+", default=[5, 10])
    se.add_argument("--steps", type=non_negative("--steps"), nargs="+", default=[0, 1, 10])
    se.add_argument("--seed", type=int, default=1, help="of the test tasks (training uses 0)")
    se.add_argument("--card", action="store_true", help="write the results into the model card beside the checkpoint")
    return parser


def _parse_value(text: str):
    """--set values: JSON where it parses (numbers, true/false, null), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _learner_options(args: argparse.Namespace) -> dict:
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
        given[key] = _parse_value(value)
    if wrong:
        options = ", ".join(k for k in accepted if k != "n_way")
        raise ValueError(f"{', '.join(wrong)} does not apply to --algorithm {args.algorithm} (its options: {options})")
    return given


# The flags a resume takes; every other setting is the saved run's own.
# --malloc and --threads: the process, not the run.
RESUME_FLAGS = {"--resume", "--malloc", "--threads", *map(as_flag, RESUME_SETTINGS)}


def typed_flags(argv: list[str]) -> list[str]:
    """The long options on a command line, as typed (``--x=1`` counts as ``--x``), in order, once each."""
    flags = [token.partition("=")[0] for token in argv if token.startswith("--")]
    return list(dict.fromkeys(flags))


def cmd_train(args: argparse.Namespace) -> None:
    command = shlex.join(["python", "-m", "playground", *args.argv])
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
        learner=_learner_options(args),
        init_from=args.init_from,
        command=command,
    )
    _run_training(cfg, None, [], args)


# Notes on how a command computes (its thread count), said once its work starts: a refused command says
# only what was wrong.
_WHEN_WORK_STARTS: list[str] = []


def _work_starts() -> None:
    for note in _WHEN_WORK_STARTS:
        print(note, file=sys.stderr)
    _WHEN_WORK_STARTS.clear()


def _run_training(cfg: TrainConfig, resume: str | None, ignored: list[str], args: argparse.Namespace) -> None:
    def started() -> None:
        _work_starts()
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


def cmd_evaluate(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    ckpt = read_checkpoint(args.checkpoint)  # read once: the learner and its protocol both come from it
    learner = learner_from_checkpoint(ckpt, device)
    _check_adapt_flags(learner, learner.name, n_steps=args.inner_steps, inner_lr=args.inner_lr)
    name = args.dataset or (dataset_of_protocol(args.protocol) if args.protocol else ckpt.dataset)
    protocol = args.protocol or (ckpt.protocol if name == ckpt.dataset else dataset_info(name).protocols[0])
    _check_dataset_fits(learner, name)
    splits_of = _splits_loader(args.data_dir, name)
    overlap = _refuse_seen_classes(ckpt, protocol, args.split, splits_of, allow=args.allow_training_classes)
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
            res = _evaluate_with_bar(
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
            queries = "" if args.query == STANDARD_QUERIES else f" of {_queries(res.n_query)}"
            seen = "" if overlap is None else f" (CONTAMINATED: {len(overlap.seen)} characters seen in training)"
            print(
                f"{learner.name} {protocol}/{args.split} {ways}-way {shots}-shot, "
                f"{res.episodes} episodes{queries}: {res.format()}{seen}",
                flush=True,
            )
            # The settings it adapted with, given or from the card (`MetaLearner.settings_for`); none: its own.
            used = learner.settings_for(ways, shots, args.inner_steps, args.inner_lr)
            result = Result.from_dict(res.as_dict())
            result = replace(
                result,
                protocol=protocol,
                split=args.split,
                seed=args.seed,
                inner_steps=used.get("n_steps"),
                inner_lr=used.get("inner_lr"),
                # each figure keeps the command that measured it: cards gather figures from several runs
                command=shlex.join(["python", "-m", "playground", *args.argv]),
            )
            results.append(result)
            if args.card:  # after every setting, so an interrupted evaluation keeps what it measured
                other = args.query != STANDARD_QUERIES  # the tables' cells are the standard count's
                path = _card_with(args.checkpoint, results, device, other_queries=other)
    if args.card:
        print(f"model card: {path}")


def _check_dataset_fits(learner, name: str) -> None:
    """Refuse a dataset whose images are not those the learner's network takes (glyphs vs photos)."""
    info = dataset_info(name)
    if tuple(info.image_shape) != tuple(learner.image_shape):
        shape = "x".join(map(str, learner.image_shape))
        raise ValueError(
            f"the checkpoint's network takes {shape} images; {info.title} has "
            f"{'x'.join(map(str, info.image_shape))}: evaluate it on the dataset it was trained for"
        )


def _splits_loader(data_dir: str | None, dataset: str = "omniglot"):
    """``protocol -> Splits`` (unrotated where the protocol allows), each built once. A protocol of another
    dataset than ``dataset`` has no classes in common with it: its splits are empty."""
    from playground.data import protocols

    built: dict[str, protocols.Splits] = {}

    def splits_of(protocol: str) -> protocols.Splits:
        if protocol not in built:
            if dataset_of_protocol(protocol) != dataset:
                none = protocols.ClassDataset(torch.zeros(0, 1, 28, 28, dtype=torch.uint8), [])
                built[protocol] = protocols.Splits(protocol, none, none, none)
            else:
                built[protocol] = load_dataset_splits(dataset, protocol, data_dir, rotations=False)
        return built[protocol]

    return splits_of


def _refuse_seen_classes(ckpt, protocol: str, split: str, splits_of, allow: bool = False):
    """Refuse to measure a checkpoint on a split holding characters it was trained or chosen on (another
    protocol's split); with ``allow``, return what overlaps (None when nothing does) for the caller to mark."""
    from playground.evaluation import training_overlap

    overlap = training_overlap(ckpt.trained_protocols, protocol, split, splits_of)
    if overlap is not None and not allow:
        raise ValueError(
            f"{overlap.describe()}: its accuracy there would not measure learning new classes. Evaluate on "
            f"--protocol {ckpt.protocol}, or pass --allow-training-classes to measure it anyway (marked "
            "contaminated, never written into a card)"
        )
    return overlap


def _evaluate_with_bar(
    label: str,
    learner,
    dataset,
    ways: int,
    shots: int,
    query: int,
    episodes: int,
    seed: int,
    n_steps: int | None,
    inner_lr: float | None = None,
):
    """`evaluate_few_shot` with a progress bar: one setting (MAML, 30 steps, 20-way 5-shot) can take 45 minutes."""
    from playground.evaluation import evaluate_few_shot
    from playground.training import progress_bar

    _work_starts()
    with progress_bar(episodes, desc=label) as bar:
        return evaluate_few_shot(
            learner,
            dataset,
            ways,
            shots,
            query,
            episodes,
            seed=seed,
            n_steps=n_steps,
            inner_lr=inner_lr,
            progress=lambda done, _total: bar.update(done - bar.n),
        )


def _card_with(checkpoint: str, results: list[Result], device, other_queries: bool = False) -> Path:
    """Write ``results`` into the checkpoint's model card, replacing earlier figures for the same settings.

    ``other_queries``: figures measured with another number of queries per class than the
    standard one (such as a paper's own, `Published.queries`), kept beside the standard ones.
    """
    card = read_card(checkpoint) or make_card(Path(checkpoint), [], device)
    return write_card(checkpoint, card.with_results(results, hardware_description(device), other_queries))


_ADAPT_FLAGS = {"n_steps": ("--inner-steps", "inner steps"), "inner_lr": ("--inner-lr", "inner learning rate")}


def _check_adapt_flags(learner, label: str, **given) -> None:
    """Refuse ``--inner-steps``/``--inner-lr`` for a learner that would ignore them (a card would name
    settings its figure was not measured with). ``given`` maps ``n_steps``/``inner_lr`` to the flag's value."""
    for option, value in given.items():
        if value not in (None, []) and not learner.adapts_with(option):
            flag, what = _ADAPT_FLAGS[option]
            raise ValueError(f"{flag}: {label} has no {what} (it adapts without gradient steps)")


def cmd_lake_runs(args: argparse.Namespace) -> None:
    from playground.data.lake_runs import (
        HUMAN_ERROR,
        error_percent,
        evaluate_lake_runs,
        lake_settings,
        load_lake_runs,
        validation_runs,
    )
    from playground.evaluation import confidence_interval_95

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
        _check_adapt_flags(learner, f"{path} ({learner.name})", n_steps=args.inner_steps, inner_lr=args.inner_lr)
    if args.validation:
        from playground.data.omniglot import load_omniglot

        runs = validation_runs(load_omniglot(args.data_dir), args.validation)
        print(f"{args.validation} runs built like Lake's from the meta-validation alphabets (people: not measured)")
    else:
        runs = load_lake_runs(Path(args.data_dir) if args.data_dir else None)
        print(f"{'people':<24} {error_percent(HUMAN_ERROR):>5}% error")
    _work_starts()
    for (path, _), learner in zip(checkpoints, learners):
        for steps, lr in itertools.product(steps_list, rates):
            res = evaluate_lake_runs(learner, runs, n_steps=steps, inner_lr=lr, one_to_one_assignment=args.one_to_one)
            if args.validation:
                spread = confidence_interval_95(res.run_errors)
                detail = f"± {100 * spread:.1f} (95% CI over {len(runs)} runs)"
            else:
                detail = f"(runs: {' '.join(f'{100 * e:.0f}' for e in res.run_errors)})"
            label = learner.name + " " + Path(path).name + _setting(steps, lr)
            print(f"{label:<24} {error_percent(res.error):>5}% error  {detail}", flush=True)
            if args.card:
                card = read_card(path) or make_card(Path(path), [], device)
                # the settings it adapted with, given or from the card; none recorded: the learner's own
                used = lake_settings(learner, steps, lr)
                lake = LakeRuns(
                    error=round(res.error, 4),
                    run_errors=res.run_errors,
                    human_error=HUMAN_ERROR,
                    command=shlex.join(["python", "-m", "playground", *args.argv]),
                    inner_steps=used.get("n_steps"),
                    inner_lr=used.get("inner_lr"),
                )
                write_card(path, replace(card, lake_runs=lake))


def cmd_calibrate_steps(args: argparse.Namespace) -> None:
    from playground.checkpoints import save_checkpoint

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
    splits_of = _splits_loader(args.data_dir)
    # Its own validation split holds no training class, unless it was fine-tuned from another protocol's model.
    _refuse_seen_classes(ckpt, protocol, "val", splits_of)
    val = splits_of(protocol).val.to(device)
    rates = args.inner_lrs or [None]
    scores: dict[tuple[int, float | None], float] = {}
    for lr in rates:
        for steps in args.candidates:
            label = f"{steps:>3} steps" + ("" if lr is None else f" of {lr:g}")
            res = _evaluate_with_bar(
                label,
                learner,
                val,
                args.ways,
                args.shots,
                15,
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
    scores = {steps: v for (steps, _), v in scores.items()}
    learner.test_inner_steps = best
    extra = dict(ckpt.extra)
    training = {**ckpt.training, "calibrated_test_inner_steps": {str(k): v for k, v in scores.items()}}
    save_checkpoint(args.checkpoint, learner, training=training, optimizer=ckpt.optimizer, **extra)
    print(f"test_inner_steps = {best} written to {args.checkpoint}")


def _percent(fraction: float) -> str:
    """One decimal, halves rounded up: a card's 0.0625 (25 errors of 400) reads 6.3%, as `lake-runs` printed it."""
    from decimal import ROUND_HALF_UP, Decimal

    return f"{Decimal(str(100 * fraction)).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"


def _cell(result: Result | None) -> str:
    """A card result as a table cell; inner steps or a step size other than the checkpoint's own are named."""
    if result is None:
        return "–"
    return result.text + _setting(result.inner_steps, result.inner_lr)


def _setting(steps: int | None, lr: float | None) -> str:
    """ " (20 steps of 0.025)", " (step size 0.1)", " (30 steps)" or "" (the checkpoint's own steps and rate)."""
    if lr is not None:
        return f" (step size {lr:g})" if steps is None else f" ({_step_count(steps)} of {lr:g})"
    return "" if steps is None else f" ({_step_count(steps)})"


def _queries(n: int) -> str:
    return f"{n} {'query' if n == 1 else 'queries'} per class"


def _step_count(steps: int) -> str:
    return f"{steps} step{'' if steps == 1 else 's'}"


def _budget(training: TrainingRecord) -> str:
    """A card's training budget as a cell; a fine-tuned model's counts its base's too ("4000 + 100 it")."""
    base = training.base
    its = f"{'?' if training.iterations is None else training.iterations} it"
    seconds = training.seconds or 0
    if base:
        its = f"{base['iterations']} + {its} (fine-tuned from {base['algorithm']})"
        seconds += base["seconds"]
    return f"{its}, {seconds / 60:.0f} min"


def results_table(entries, papers: bool = False) -> str:
    """Markdown: one row per model, 5/20-way x 1/5-shot accuracy with CI, and Lake's runs.

    With ``papers``, each `vinyals` model with published figures (`playground.papers`) is followed by a row of
    them, each marked "reached" (our mean above it, or it within our 95% CI) or by how far short we are.
    The Lake column is left out when no card has Lake's runs (a `vinyals` model must not be run on them).
    """
    from playground.papers import SETTINGS, published_for

    entries = list(entries)
    cards = [e.card or ModelCard() for e in entries]
    lake_column = any(card.lake_runs is not None for card in cards)
    head = "| model | " + " | ".join(f"{n}-way {k}-shot" for n, k in SETTINGS)
    head += " | Lake's 20 runs (error) | training |" if lake_column else " | training |"
    lines = [head, "|" + " --- |" * (len(SETTINGS) + 2 + lake_column)]
    for e, card in zip(entries, cards):
        measured = {(r.n_way, r.k_shot): r for r in card.results()}
        cells = [_cell(measured.get(setting)) for setting in SETTINGS]
        if lake_column:
            lake = card.lake_runs or LakeRuns()
            setting = _setting(lake.inner_steps, lake.inner_lr)
            cells.append("–" if lake.error is None else _percent(lake.error) + setting)
        cells.append(_budget(card.training))
        lines.append(f"| `{e.name}` | " + " | ".join(cells) + " |")
        # The papers' figures are on the vinyals split; beside a lake model they would mislead.
        paper = published_for(card) if papers and card.protocol == "vinyals" else None
        if paper is None:
            continue
        others = {(r.n_way, r.k_shot, r.n_query): r for r in card.evaluation.other_queries}
        cells = []
        for n, k in SETTINGS:
            figure, ours = paper.figure(n, k), measured.get((n, k))
            if ours is None:
                cells.append(f"{figure}")
                continue
            cell = f"{figure} ({_against(ours, figure)}"
            # Measured as the authors tested too (their queries per class), where that differs from ours.
            theirs = others.get((n, k, paper.queries_for(n, k)))
            if theirs is not None:
                setting = _setting(theirs.inner_steps, theirs.inner_lr)
                if setting == _setting(ours.inner_steps, ours.inner_lr):
                    setting = ""
                cell += f"; at its {_queries(theirs.n_query)}: {theirs.text}{setting}, {_against(theirs, figure)}"
            cells.append(cell + ")")
        cells += ["–"] * lake_column + ["published"]
        lines.append(f"| ↳ {paper.source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _against(ours: Result, figure: float) -> str:
    """ "reached" (our mean above the figure, or it within our 95% CI) or "short by 0.4"."""
    from playground.papers import reaches

    if reaches(100 * ours.accuracy, 100 * ours.ci95, figure):
        return "reached"
    return f"short by {figure - 100 * ours.accuracy:.1f}"


def cmd_ship(args: argparse.Namespace) -> None:
    from playground.checkpoints import ship

    path, card = ship(args.checkpoint, args.target, note=args.note)
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")
    if card is None:
        print(f"{args.checkpoint} has no model card: run `evaluate {path} --card` to give the shipped model one")
    else:
        print(f"{card}: its model card")


def cmd_ensemble(args: argparse.Namespace) -> None:
    from playground.assemble import save_ensemble

    command = shlex.join(["python", "-m", "playground", *args.argv])
    step_views = not args.plain_support_for_steps
    path = save_ensemble(args.checkpoints, args.out, view_shift=args.view_shift, command=command, step_views=step_views)
    print(
        f"{path}: an ensemble of {len(args.checkpoints)}, view shift {args.view_shift}, "
        f"{path.stat().st_size / 1e6:.2f} MB"
    )


def cmd_report(args: argparse.Namespace) -> None:
    from playground.zoo import CHECKPOINT_DIR, shipped_models

    entries = list(shipped_models(args.dir or CHECKPOINT_DIR))
    table = results_table([e for e in entries if e.dataset == "omniglot"], args.papers)
    print(table)
    if args.papers:
        from playground.papers import PUBLISHED_COLOUR, colour_papers_table

        for name in PUBLISHED_COLOUR:
            print("\n" + colour_papers_table(name, [e.card for e in entries if e.card]))
    if args.readme:
        from playground.readme_table import replace_table

        path = Path(args.readme)
        if not path.is_file():
            raise SystemExit(f"--readme: {path} is not a file")
        try:
            text = path.read_text(encoding="utf-8")
            updated = replace_table(text, table)
        except (ValueError, UnicodeDecodeError) as e:
            raise SystemExit(f"--readme {path}: {e}") from None
        if updated != text:
            path.write_text(updated, encoding="utf-8")
        print(f"{path}: table {'updated' if updated != text else 'already up to date'}", file=sys.stderr)


def cmd_download(args: argparse.Namespace) -> None:
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    todo = missing_files(data_dir)
    if not todo:
        print(f"Omniglot and Lake's runs are already in {data_dir}.")
        return
    print(f"Downloading {', '.join(f.name for f in todo)} (about {megabytes(todo)} MB) from {base_url()}")
    live = sys.stdout.isatty()
    shown = {"tenth": -1}

    def progress(done: int, total: int, name: str) -> None:
        text = f"  {done / 1e6:5.1f} of {total / 1e6:.1f} MB ({name})"
        if live:
            print(f"\r{text}   ", end="", flush=True)
        elif total and 10 * done // total > shown["tenth"]:  # a log gets one line per tenth, not per chunk
            shown["tenth"] = 10 * done // total
            print(text, flush=True)

    try:
        download_data(data_dir, todo, progress)
    finally:
        if live:
            print()
    print(f"Omniglot and Lake's runs are in {data_dir}, checked against their checksums.")


def cmd_sinusoid(args: argparse.Namespace) -> None:
    from playground.sinusoid import evaluate, load_regressors, results_table, train_and_save
    from playground.sinusoid.store import update_card

    if args.action == "evaluate":
        regressors = load_regressors(args.checkpoint)
        results = evaluate(regressors, args.tasks, args.shots, args.steps, seed=args.seed)
        print(f"{args.tasks} test tasks (seed {args.seed}):\n{results_table(results)}")
        if args.card:
            print(f"model card: {update_card(args.checkpoint, regressors, results)}")
        return
    # The card records the exact command, every option spelled out.
    command = (
        f"python -m playground sinusoid train --out {args.out} --iterations {args.iterations}"
        + (f" --pretrain-iterations {args.pretrain_iterations}" if args.pretrain_iterations else "")
        + f" --meta-batch {args.meta_batch} --shots {args.shots} --query {args.query} --inner-lr {args.inner_lr}"
        + f" --inner-steps {args.inner_steps} --outer-lr {args.outer_lr} --scratch-lr {args.scratch_lr}"
        + (" --first-order" if args.first_order else "")
        + f" --seed {args.seed} --eval-tasks {args.eval_tasks} --eval-steps {' '.join(map(str, args.eval_steps))}"
    )

    def progress(method: str, it: int, total: int, loss: float) -> None:
        print(f"{method}: iteration {it}/{total}, loss {loss:.4f}", flush=True)

    path, results = train_and_save(
        args.out,
        command,
        eval_tasks=args.eval_tasks,
        eval_steps=args.eval_steps,
        progress=progress,
        iterations=args.iterations,
        pretrain_iterations=args.pretrain_iterations,
        meta_batch=args.meta_batch,
        k_shot=args.shots,
        n_query=args.query,
        inner_lr=args.inner_lr,
        inner_steps=args.inner_steps,
        outer_lr=args.outer_lr,
        scratch_lr=args.scratch_lr,
        first_order=args.first_order,
        seed=args.seed,
    )
    print(f"{args.eval_tasks} test tasks:\n{results_table(results)}")
    print(f"checkpoint: {path}\nmodel card: {path.with_suffix('.json')}")


def cmd_style_shift(args: argparse.Namespace) -> None:
    _work_starts()
    style_bench.run_from_args(args, shlex.join(["python", "-m", "playground", *args.argv]))


def main(argv: list[str] | None = None) -> int:
    try:
        load_plugins(plugin_flags(sys.argv[1:] if argv is None else argv))  # before the parser takes its choices
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in model cards
    args.memory_kept = getattr(args, "malloc", "default") == "keep" and keep_freed_memory()
    threads_before = torch.get_num_threads()  # put back on return: tests call main in-process
    if hasattr(args, "threads"):
        said = set_threads(args.threads).describe()
        if said and distributed.is_main():
            _WHEN_WORK_STARTS.append(said)
    try:
        {
            "train": cmd_train,
            "evaluate": cmd_evaluate,
            "lake-runs": cmd_lake_runs,
            "calibrate-steps": cmd_calibrate_steps,
            "report": cmd_report,
            "ship": cmd_ship,
            "ensemble": cmd_ensemble,
            "style-shift": cmd_style_shift,
            "download": cmd_download,
            "sinusoid": cmd_sinusoid,
        }[args.command](args)
    except (ValueError, DataError, CheckpointError, FloatingPointError) as exc:
        if distributed.is_main():  # under torchrun every rank fails alike: one copy of the message
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # Training's own interruption says what its checkpoints hold; anything else claims nothing.
        if distributed.is_main():
            print(f"interrupted: {exc}" if str(exc) else "interrupted", file=sys.stderr)
        return 128 + getattr(exc, "signum", signal.SIGINT)
    finally:
        torch.set_num_threads(threads_before)
        _WHEN_WORK_STARTS.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())

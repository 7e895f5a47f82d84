"""Time to accuracy: training minutes from a random initialisation to a target test accuracy.

    python -m bench.time_to_accuracy --algorithm protonet --train-ways 60 --query 5 --meta-batch 1
    python -m bench.time_to_accuracy --algorithm maml --meta-batch 8 --query 5 --set inner_lr=0.4 \
        --set inner_steps=1 --cosine-over 5000

Trains on the lake protocol's background alphabets (with rotations) and, every ``--check-every``
iterations, measures 5-way 1-shot accuracy on the evaluation alphabets over ``--check-episodes``
seeded episodes. The clock counts training only, not the checks. When a check reaches
``--target`` it is confirmed over 600 episodes; the first confirmed check gives the figure.
Prints one line per check and a summary line; ``--log`` also writes them as JSON lines.
``--malloc keep`` keeps freed memory, as ``playground train`` does by default; ``--precision bf16``
trains under bfloat16 autocast, as ``playground train --precision bf16``.
The outer rate is constant unless ``--cosine-over N``: then it decays as in ``playground train
--iterations N`` (the training CLI's cosine schedule), which some learners need to settle.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from bench.malloc_flag import add_malloc_flag, apply_malloc_flag
from playground.algorithms import create_learner
from playground.cli.train import parse_value
from playground.data.episodes import TaskSampler
from playground.data.protocols import load_splits
from playground.evaluation.few_shot import evaluate_few_shot
from playground.runtime.device import resolve_device
from playground.runtime.precision import PRECISIONS, training_autocast
from playground.training import cosine_schedule, hardware_description


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--algorithm", default="protonet")
    ap.add_argument("--train-ways", type=int, default=5)
    ap.add_argument("--shots", type=int, default=1)
    ap.add_argument("--query", type=int, default=15)
    ap.add_argument("--meta-batch", type=int, default=32)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a hyperparameter (repeatable)")
    ap.add_argument("--target", type=float, default=0.97)
    ap.add_argument("--check-every", type=int, default=100, help="iterations between accuracy checks")
    ap.add_argument("--check-episodes", type=int, default=200)
    ap.add_argument("--max-minutes", type=float, default=120.0, help="give up after this much training time")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log", default=None, help="also write each check as a JSON line here")
    ap.add_argument(
        "--cosine-over",
        type=int,
        default=None,
        metavar="N",
        help="decay the outer rate over N iterations as `playground train --iterations N` does (default: constant)",
    )
    ap.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="bf16: training steps under bfloat16 autocast, as `playground train --precision bf16` (checks: float32)",
    )
    add_malloc_flag(ap)
    args = ap.parse_args(argv)
    apply_malloc_flag(ap, args)
    if args.cosine_over is not None and args.cosine_over < 1:
        ap.error(f"--cosine-over must be at least 1 iteration, got {args.cosine_over}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    options = {k.strip().replace("-", "_"): parse_value(v) for k, _, v in (s.partition("=") for s in args.set)}
    learner = create_learner(args.algorithm, n_way=args.train_ways, **options).to(device)
    splits = load_splits("lake", rotations=True)
    train_set, test_set = splits.train.to(device), splits.test.to(device)
    learner.prepare_training(train_set)
    # Made after prepare_training, which may add parameters to the optimizer.
    scheduler = cosine_schedule(learner.optimizer, args.cosine_over) if args.cosine_over else None
    sampler = TaskSampler(train_set, args.train_ways, args.shots, args.query, seed=args.seed)
    where = f"{hardware_description(device)}; torch {torch.__version__}"
    what = " ".join([args.algorithm, *(f"{k}={v}" for k, v in options.items())])
    if args.cosine_over:
        what += f", outer rate cosine over {args.cosine_over} iterations"
    if args.precision != "fp32":
        what += f", {args.precision} autocast"
    print(f"{what}, {args.train_ways}-way training episodes, to {100 * args.target:.0f}% 5-way 1-shot; {where}")
    # Line-buffered: a run stopped from outside (kill, timeout) keeps every check it made.
    log = open(args.log, "a", buffering=1) if args.log else None  # noqa: SIM115 - closed below
    trained, iteration, reached = 0.0, 0, None
    try:
        while trained < 60 * args.max_minutes:
            learner.train()
            t0 = time.perf_counter()
            for _ in range(args.check_every):
                with training_autocast(device, args.precision):
                    learner.meta_train_step(sampler.sample_batch(args.meta_batch))
                if scheduler is not None:
                    scheduler.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            trained += time.perf_counter() - t0
            iteration += args.check_every
            check = evaluate_few_shot(learner, test_set, 5, 1, 15, args.check_episodes, seed=1)
            confirmed = None
            if check.mean >= args.target:
                confirmed = evaluate_few_shot(learner, test_set, 5, 1, 15, 600, seed=0)
            record = {
                "iteration": iteration,
                "train_minutes": round(trained / 60, 2),
                "check_accuracy": round(check.mean, 4),
                "confirmed_600": None if confirmed is None else round(confirmed.mean, 4),
                "outer_lr": learner.optimizer.param_groups[0]["lr"],
            }
            print(json.dumps(record), flush=True)
            if log:
                log.write(json.dumps(record) + "\n")
            if confirmed is not None and confirmed.mean >= args.target:
                reached = (record, confirmed)
                break
    finally:
        if log:
            log.close()
    if reached is None:
        print(f"not reached in {args.max_minutes:g} minutes of training ({iteration} iterations)")
        return 1
    record, confirmed = reached
    print(
        f"reached {confirmed.format()} (600 episodes) after {record['train_minutes']:.1f} training minutes, "
        f"{record['iteration']} iterations"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

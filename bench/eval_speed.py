"""Evaluation speed: wall time of the standard 600-episode evaluation, per shipped model.

    python -m bench.eval_speed --device cpu --threads 2
    python -m bench.eval_speed --models protonet_lake maml_lake --ways 20 --shots 5

Each run is exactly `python -m playground evaluate CKPT --episodes 600` without the printing:
`evaluate_few_shot` on the lake test split, 15 queries per class, seed 0, batches of 50 episodes.
The accuracy is printed too, so a figure can be matched against the model card.
"""

from __future__ import annotations

import argparse
import time

import torch

from playground.data.protocols import load_splits
from playground.evaluation.few_shot import evaluate_few_shot
from playground.runtime.device import resolve_device
from playground.zoo.shipped import shipped_models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--models", nargs="+", default=None, help="shipped model names (default: all)")
    ap.add_argument("--ways", type=int, nargs="+", default=[5])
    ap.add_argument("--shots", type=int, nargs="+", default=[1])
    ap.add_argument("--episodes", type=int, default=600)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    test = load_splits("lake", rotations=False).test.to(device)
    entries = [m for m in shipped_models() if args.models is None or m.name in args.models]
    missing = set(args.models or []) - {m.name for m in entries}
    if missing:
        raise SystemExit(f"no shipped model named {', '.join(sorted(missing))}")
    print(f"device {device}; {torch.get_num_threads()} threads; torch {torch.__version__}; {args.episodes} episodes")
    print(f"{'model':<16} {'task':<14} {'seconds':>9} {'episodes/s':>11} {'accuracy':>14}")
    for entry in entries:
        learner = entry.load(device)
        for n in args.ways:
            for k in args.shots:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                res = evaluate_few_shot(learner, test, n, k, 15, args.episodes, seed=0)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                print(
                    f"{entry.name:<16} {f'{n}-way {k}-shot':<14} {dt:9.1f} {args.episodes / dt:11.1f} "
                    f"{res.format():>14}",
                    flush=True,
                )


if __name__ == "__main__":
    main()

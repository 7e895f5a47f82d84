"""Meta-training throughput (tasks/s) of each algorithm on this machine.

python -m bench.meta_train_throughput --device auto
python -m bench.meta_train_throughput --device cpu --malloc keep   # as the training CLI runs
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.malloc_flag import add_malloc_flag, apply_malloc_flag
from playground.algorithms import create_learner
from playground.data.episodes import TaskSampler
from playground.data.protocols import load_splits
from playground.runtime.device import resolve_device

CASES = [
    ("protonet", {}, 60, 1, 5, 1),
    ("protonet", {}, 5, 1, 15, 32),
    ("maml", {"first_order": False, "inner_steps": 1, "task_batching": "loop"}, 5, 1, 15, 32),
    ("maml", {"first_order": False, "inner_steps": 1, "task_batching": "vmap"}, 5, 1, 15, 32),
    ("maml", {"first_order": False, "inner_steps": 1, "task_batching": "threads"}, 5, 1, 15, 32),
    (
        "maml",
        {"first_order": False, "inner_steps": 1, "task_batching": "threads", "memory_format": "channels_last"},
        5,
        1,
        15,
        32,
    ),
    ("maml", {"first_order": False, "inner_steps": 5, "inner_lr": 0.1, "task_batching": "loop"}, 5, 1, 15, 32),
    ("maml", {"first_order": False, "inner_steps": 5, "inner_lr": 0.1, "task_batching": "vmap"}, 5, 1, 15, 32),
    ("maml", {"first_order": True, "inner_steps": 5, "inner_lr": 0.1, "task_batching": "vmap"}, 5, 1, 15, 32),
    ("maml", {"first_order": True, "inner_steps": 5, "inner_lr": 0.1, "task_batching": "threads"}, 5, 1, 15, 32),
    ("reptile", {"task_batching": "loop"}, 5, 1, 5, 5),
    ("reptile", {"task_batching": "threads"}, 5, 1, 5, 5),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=10)
    add_malloc_flag(ap)
    args = ap.parse_args()
    apply_malloc_flag(ap, args)
    device = resolve_device(args.device)
    train = load_splits("lake").train.to(device)
    print(f"device {device}; torch {torch.__version__}; malloc {args.malloc}")
    print(f"{'algorithm':<10} {'options':<62} {'task':<12} {'batch':>5} {'ms/iter':>9} {'tasks/s':>9}")
    for algo, opts, n, k, q, b in CASES:
        torch.manual_seed(0)
        learner = create_learner(algo, n_way=n, **opts).to(device)
        sampler = TaskSampler(train, n, k, q, seed=0)
        for _ in range(3):
            learner.meta_train_step(sampler.sample_batch(b))
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(args.steps):
            learner.meta_train_step(sampler.sample_batch(b))
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / args.steps
        print(f"{algo:<10} {str(opts):<62} {f'{n}w{k}s{q}q':<12} {b:>5} {1000 * dt:9.1f} {b / dt:9.1f}", flush=True)


if __name__ == "__main__":
    main()

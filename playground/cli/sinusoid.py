"""``sinusoid train|evaluate``: sine-wave regression, MAML against a pretrained regressor and one from scratch."""

from __future__ import annotations

import argparse

from playground.cli.common import non_negative, positive, positive_float

NAME = "sinusoid"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    s = subparsers.add_parser(NAME, help="sine-wave regression (MAML paper 5.1): MAML vs pretrained vs scratch")
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
    return s


def run(args: argparse.Namespace) -> None:
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

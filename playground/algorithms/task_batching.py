"""How a MAML-family learner runs a meta-batch of tasks (``task_batching``), and the one place that picks how.

Every strategy computes the loop's meta-gradient up to float summation order
(tests/test_bench_reference.py), so the choice is one of speed and memory; ``python -m bench.maml_speed
--variants`` measures them against a clone-per-task reference.

* ``loop``: one task after another. A training step backpropagates each task's loss as soon as it has
  it, so only one task's graph is alive at a time (``python -m bench.maml_scaling`` measures the memory).
* ``vmap``: the tasks batched with ``torch.func.vmap``; a training step backpropagates the whole meta-loss.
* ``grouped``: the tasks as one grouped network, task t's channels being group t of every convolution
  (exact for any number of inner steps); a training step backpropagates the whole meta-loss.
* ``threads``: the loop's tasks side by side, one single-threaded worker per torch thread
  (`playground.algorithms.task_threads`).
* ``compiled``: each task's whole meta-gradient one ``torch.compile``'d graph (Reptile: each task's fit).
* ``auto``: `choose` picks one for the device and the thread count.

``grouped`` and ``compiled`` compute part of the algorithm in their own code instead of calling the
learner's methods, so a learner runs under them only where it says it does (``runs_grouped`` and
``runs_compiled``, class attributes of `MAML` that ANIL, Meta-SGD, Reptile and the LSTM meta-learner set).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from playground.algorithms.base import StepStats
from playground.algorithms.fast_weights import Params
from playground.algorithms.task_threads import map_tasks
from playground.data.episodes import TaskBatch
from playground.models.conv4 import batch_stats_embed
from playground.runtime.precision import compile_autocast, compile_options

if TYPE_CHECKING:
    from playground.algorithms.maml import MAML, Task

MODES = ("auto", "loop", "vmap", "grouped", "threads", "compiled")


def check(mode: str, bn: str, *, grouped: bool, compiled: bool) -> None:
    """Refuse (ValueError) a ``mode`` a learner cannot run; ``grouped`` and ``compiled`` as in `choose`."""
    if mode not in MODES:
        raise ValueError(f"task_batching must be one of {MODES}, got {mode!r}")
    if mode == "grouped" and not (grouped and bn == "transductive"):
        raise ValueError(
            "task_batching='grouped' needs MAML's own inner loop and forward (runs_grouped), bn='transductive' "
            "and a Conv-4 body with batch statistics"
        )
    if mode == "compiled" and not compiled:
        raise ValueError(
            "task_batching='compiled' needs meta-parameters that are the body and head alone and MAML's query loss "
            "(runs_compiled: a learned step size, as Meta-SGD's, would get no gradient)"
        )


def choose(
    mode: str, device: torch.device, threads: int, bn: str, second_order_steps: int, *, grouped: bool, compiled: bool
) -> Strategy:
    """The strategy a meta-batch runs with: ``mode`` itself, or for "auto" the one for ``device`` and ``threads``.

    ``second_order_steps``: the inner steps the meta-gradient differentiates through (0 for first order and
    for evaluation). ``grouped``: the learner runs as the grouped network (its class's ``runs_grouped`` and a
    Conv-4 body with batch statistics); ``compiled``: its class's ``runs_compiled``.

    vmap's batch-norm backward rule gives second-order meta-gradients that are off by about 0.1% once the
    inner loop has two or more steps with transductive batch norm (checked against float64 finite
    differences; functorch issue #534), so those runs never use vmap. With one step and
    ``head="per_class"`` it is off too (about 10% of the body's meta-gradient in float64, against the loop,
    finite differences and the clone-per-task reference of bench/reference_maml.py), so "auto" never uses
    vmap for second-order MAML with transductive batch norm; an explicit "vmap" keeps it for one step (the
    caller asked for it). The grouped network uses the ordinary batch-norm op and is exact.
    """
    check(mode, bn, grouped=grouped, compiled=compiled)
    transductive_second_order = second_order_steps >= 1 and bn == "transductive"
    if mode == "auto":
        # On a CPU, tasks side by side on threads beat the loop, and vmap and grouped lose to it; on a GPU
        # batched tasks win, grouped standing in where vmap is inexact (python -m bench.maml_speed --variants).
        if device.type != "cuda":
            mode = "threads" if threads > 1 else "loop"
        elif transductive_second_order:
            mode = "grouped" if grouped else "loop"
        else:
            mode = "vmap"
    elif mode == "vmap" and transductive_second_order and second_order_steps >= 2:
        mode = "loop"
    return STRATEGIES[mode]


def _n_way(tasks: TaskBatch) -> int:
    return int(tasks.support_y[0].max()) + 1


def _task(tasks: TaskBatch, t: int) -> Task:
    return tasks.support_x[t], tasks.support_y[t], tasks.query_x[t], tasks.query_y[t]


def _training_task_loss(learner: MAML, tasks: TaskBatch, t: int, n_way: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Task t's query loss and accuracy after the training inner loop."""
    # Fresh initial weights per task: their little graph (the head's expansion) is freed with the task's.
    fast0 = learner.initial_fast_weights(n_way)
    return learner.task_query_loss(fast0, _task(tasks, t), learner.inner_steps, learner.first_order)


class Strategy:
    """How a meta-batch's tasks run: this base runs them one after another ("loop"); the others replace the
    parts they run faster."""

    name = "loop"

    def query_losses(
        self, learner: MAML, tasks: TaskBatch, steps: int, first_order: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each task's query loss and accuracy [T] after ``steps`` inner steps (`MAML.task_query_loss`)."""
        fast0 = learner.initial_fast_weights(_n_way(tasks))
        out = [learner.task_query_loss(fast0, _task(tasks, t), steps, first_order) for t in range(len(tasks))]
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])

    def train_step(self, learner: MAML, tasks: TaskBatch, grad_hook: Callable | None) -> StepStats:
        """One outer update: the meta-gradient into ``.grad`` (`backward`), then ``grad_hook``, then the optimizer."""
        learner.train()
        try:
            learner.optimizer.zero_grad(set_to_none=True)
            losses, accs = self.backward(learner, tasks)
            if grad_hook is not None:
                grad_hook(learner)
            learner.optimizer.step()
        finally:
            learner.eval()
        return StepStats(float(losses.mean()), float(accs.mean()))

    def backward(self, learner: MAML, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Leave the gradient of `MAML.meta_loss` in ``.grad``; return each task's query loss and accuracy [T]."""
        n_way = _n_way(tasks)
        losses, accs = [], []
        for t in range(len(tasks)):
            loss, acc = _training_task_loss(learner, tasks, t, n_way)
            (loss / len(tasks)).backward()
            losses.append(loss.detach())
            accs.append(acc)
        return torch.stack(losses), torch.stack(accs)


class Batched(Strategy):
    """Every task's graph at once: a training step backpropagates the whole meta-loss."""

    def backward(self, learner: MAML, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        losses, accs = self.query_losses(learner, tasks, learner.inner_steps, learner.first_order)
        losses.mean().backward()
        return losses.detach(), accs


class Vmap(Batched):
    name = "vmap"

    def query_losses(
        self, learner: MAML, tasks: TaskBatch, steps: int, first_order: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        fast0 = learner.initial_fast_weights(_n_way(tasks))
        fn = lambda *task: learner.task_query_loss(fast0, task, steps, first_order)
        return vmap(fn, randomness="different")(tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y)


class Grouped(Batched):
    """Task t's weights are group t of every convolution: MAML's inner loop and forward, T tasks at once."""

    name = "grouped"

    def query_losses(
        self, learner: MAML, tasks: TaskBatch, steps: int, first_order: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        t = len(tasks)
        fast0 = learner.initial_fast_weights(_n_way(tasks))
        fast = {k: v.expand(t, *v.shape) for k, v in fast0.items()}
        keys = learner.inner_keys(fast)
        for step in range(steps):
            adapted = {k: fast[k] for k in keys}
            frozen = {k: v for k, v in fast.items() if k not in adapted}
            grads = grad(partial(_grouped_support_loss, learner))(adapted, frozen, tasks.support_x, tasks.support_y)
            if first_order:
                grads = {k: g.detach() for k, g in grads.items()}
            fast = learner.inner_update(fast, grads, step)
        logits = _grouped_logits(learner, fast, tasks.query_x)
        losses = F.cross_entropy(logits.flatten(0, 1), tasks.query_y.flatten(), reduction="none").view(t, -1)
        return losses.mean(1), (logits.argmax(-1) == tasks.query_y).float().mean(1)


def _grouped_logits(learner: MAML, fast: Params, x: torch.Tensor) -> torch.Tensor:
    """Logits [T, n, N] of T tasks at once, from fast weights [T, ...] and images [T, n, C, H, W]."""
    body = {k[5:]: v for k, v in fast.items() if k.startswith("body.")}
    z = batch_stats_embed(learner.body, body, x, learner.channels_last())
    return torch.baddbmm(fast["head.bias"].unsqueeze(1), z, fast["head.weight"].transpose(1, 2))


def _grouped_support_loss(learner: MAML, adapted: Params, frozen: Params, x: torch.Tensor, y: torch.Tensor):
    logits = _grouped_logits(learner, {**frozen, **adapted}, x)
    # The sum over tasks of each task's mean loss: its gradient w.r.t. task t's weights is task t's own.
    return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / y.shape[1]


class Threads(Strategy):
    """The loop's tasks side by side on CPU threads (`task_threads.map_tasks`).

    Each task's meta-gradient is computed on its own and they are summed in task order, as the loop's
    backward calls sum them, so the result equals the loop's up to the kernels' own float order on one thread.
    """

    name = "threads"

    def backward(self, learner: MAML, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        n_way = _n_way(tasks)
        params = [p for p in learner.parameters() if p.requires_grad]

        def task_grads(t: int):
            loss, acc = _training_task_loss(learner, tasks, t, n_way)
            grads = torch.autograd.grad(loss / len(tasks), params, allow_unused=True)
            return grads, loss.detach(), acc.detach()

        results = map_tasks(task_grads, len(tasks))
        for i, p in enumerate(params):
            for grads, _, _ in results:
                if grads[i] is not None:
                    p.grad = grads[i].clone() if p.grad is None else p.grad.add_(grads[i])
        return torch.stack([r[1] for r in results]), torch.stack([r[2] for r in results])


class Compiled(Strategy):
    """The loop, each task's meta-gradient from one ``torch.compile``'d function of the meta-parameters.

    A compiled function cannot be differentiated twice, so the whole task (inner loop, query loss) is one
    ``torch.func.grad``, traced as a single graph: the loop's meta-gradient up to float order. It pays once a
    run is long enough to repay the compiling, done once per process and per task size (python -m
    bench.maml_speed --compile --malloc keep; bench.process_throughput --rank-batching compiled --malloc keep).
    The task's initial weights are rebuilt from the body and head parameters alone (`MAML.fast_from`) and
    its query loss is MAML's, which is why a learner runs compiled only where it says so (``runs_compiled``).
    """

    name = "compiled"

    def backward(self, learner: MAML, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        meta_grad = compile_once(learner, "_compiled_grad", lambda: grad(_task_loss_of(learner), has_aux=True))
        n_way = _n_way(tasks)
        params = {k: p.detach() for k, p in learner.named_parameters() if p.requires_grad}
        total: Params = {}
        losses, accs = [], []
        for t in range(len(tasks)):
            grads, (loss, acc) = meta_grad(params, n_way, *_task(tasks, t))
            for k, g in grads.items():  # summed in task order, as the loop's backward calls sum them
                total[k] = g / len(tasks) if k not in total else total[k] + g / len(tasks)
            losses.append(loss.detach())
            accs.append(acc.detach())
        for k, p in learner.named_parameters():
            if k in total:
                p.grad = total[k]
        return torch.stack(losses), torch.stack(accs)


def _task_loss_of(learner: MAML) -> Callable:
    """One task's query loss and (loss, accuracy) as a function of the meta-parameters by name."""

    def task_loss(params: Params, n_way: int, sx, sy, qx, qy):
        body = {k: v for k, v in params.items() if k.startswith("body.")}
        fast0 = learner.fast_from(body, params["head_weight"], params["head_bias"], n_way)
        fast = learner.inner_loop(fast0, sx, sy, learner.inner_steps, learner.first_order)
        logits = learner.forward_fast(fast, qx)
        loss = F.cross_entropy(logits, qy)
        return loss, (loss.detach(), (logits.argmax(-1) == qy).float().mean())

    return task_loss


def compile_once(learner: MAML, key: str, build: Callable[[], Callable]) -> Callable:
    """``torch.compile(build())``, made on first use and kept under ``key`` for the learner's life."""
    autocast = compile_autocast()
    if autocast is not None:
        key = f"{key}_{autocast}"  # a graph traced under autocast is another graph
    fn = learner.__dict__.get(key)
    if fn is None:
        fn = torch.compile(build(), options=compile_options(autocast))
        # Kept out of the module's attributes proper: not a parameter, not saved, not copied.
        learner.__dict__[key] = fn
    return fn


STRATEGIES: dict[str, Strategy] = {s.name: s for s in (Strategy(), Vmap(), Grouped(), Threads(), Compiled())}


def accuracies(learner: MAML, tasks: TaskBatch, steps: int, lr: float | None) -> torch.Tensor:
    """Each task's query accuracy after ``steps`` first-order inner steps, for evaluation.

    Batched with vmap where `choose` picks it, else one task after another: the other strategies are there
    for the meta-gradient."""
    n_way = int(tasks.support_y[0].max()) + 1
    with torch.enable_grad():
        fast0 = {k: v.detach() for k, v in learner.initial_fast_weights(n_way).items()}

        def one(sx, sy, qx, qy):
            fast = learner.inner_loop(fast0, sx, sy, steps, first_order=True, lr=lr)
            return (learner.forward_fast(fast, qx).argmax(-1) == qy).float().mean()

        args = (tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y)
        if learner.batching_strategy(tasks.support_x.device).name == "vmap":
            return vmap(one)(*args).detach()
        return torch.stack([one(*(a[i] for a in args)) for i in range(len(tasks))]).detach()

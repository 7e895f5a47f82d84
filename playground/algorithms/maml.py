"""MAML (Finn et al. 2017): meta-learn an initialisation that a few SGD steps adapt to a task.

Functional (``torch.func.grad`` over `playground.models.functional.functional_forward`): the inner loop
builds new tensors from the meta-parameters and never writes to them, not even for the length of a call
as ``functional_call`` would, so one shared model serves any number of concurrent `adapt` calls.
Second-order gradients flow through the inner loop unless ``first_order`` is set. How a meta-batch's
tasks run (loop, vmap, grouped, threads, compiled) is `playground.algorithms.task_batching`'s choice.

The head. ``head="shared"`` (default) meta-learns one weight row and bias, copied to every class when
adaptation starts (as "UnicornMAML", Ye & Chao 2022, does); the inner loop pulls the copies apart. The
start is then the same for any class order and any number of ways (2 to 20). ``head="per_class"`` is
the paper's N-way head; adapting it to another N starts every class from the mean row.

Batch norm. ``bn="transductive"`` (default, the papers' protocol) normalises with the statistics of the
batch it sees: the support set in the inner loop, the queries for predictions, so a query's prediction
depends on the queries beside it. ``bn="per_example"`` normalises each image with its own statistics
(the body runs on single-image batches under ``vmap``), so a prediction depends on the image alone. A
model is meta-trained in the mode it is used in.

The Conv-4 body with batch statistics takes a faster forward (`playground.models.conv4.batch_stats_embed`,
bit for bit the module's); ``bench/maml_speed.py`` measures it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, vmap

from playground.algorithms import task_batching as batching
from playground.algorithms.base import (
    AdaptOption,
    MetaLearner,
    StepRecord,
    StepStats,
    gradient_step_options,
    one_of,
    register,
)
from playground.algorithms.fast_weights import FunctionalPredictor, OnStep, Params
from playground.data.episodes import TaskBatch
from playground.models.conv4 import batch_stats_embed, batch_stats_embed_supported
from playground.models.functional import functional_forward

Task = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # support images, labels, query images, labels
HEADS = ("shared", "per_class")
MEMORY_FORMATS = ("contiguous", "channels_last")
BATCH_NORM = ("transductive", "per_example")
EXPORTED_FORWARD = ("forward_fast", "features_fast", "_embed")  # what `export_module` rebuilds


@register
class MAML(MetaLearner):
    name = "maml"
    title = "MAML"
    trains_live = True
    backbones = ("conv4", "resnet12")
    # The two task-batching strategies that compute part of the algorithm in their own code (`task_batching`):
    # "grouped" runs MAML's inner loop and forward for all tasks at once; "compiled" rebuilds a task's initial
    # weights from the body and head parameters alone and takes MAML's query loss. A subclass that changes those
    # parts says here that the strategy does not run it, as ANIL and Meta-SGD do.
    runs_grouped: ClassVar[bool] = True
    runs_compiled: ClassVar[bool] = True

    def __init__(
        self,
        *,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        test_inner_steps: int = 3,
        first_order: bool = False,
        head: str = "shared",
        hidden: int = 64,
        task_batching: str = "auto",
        bn: str = "transductive",
        memory_format: str = "contiguous",
        model: nn.Module | None = None,
        **base,
    ):
        super().__init__(**base)
        one_of("head", head, HEADS)
        one_of("bn", bn, BATCH_NORM)
        one_of("memory_format", memory_format, MEMORY_FORMATS)
        if inner_steps < 0 or test_inner_steps < 0:
            raise ValueError("inner steps must be >= 0")
        self.inner_lr, self.inner_steps, self.test_inner_steps = inner_lr, inner_steps, test_inner_steps
        self.first_order, self.head, self.hidden, self.task_batching = first_order, head, hidden, task_batching
        self.bn, self.memory_format = bn, memory_format
        self.body = model if model is not None else self.make_backbone(hidden, track_running_stats=False)
        # Conv-4 with batch statistics has a faster functional forward; any other body runs as a module.
        self._fast_body = batch_stats_embed_supported(self.body)
        # A mode this learner cannot run is refused now rather than at the first step.
        batching.check(
            self.task_batching, bn, grouped=self.runs_grouped and self._fast_body, compiled=self.runs_compiled
        )
        rows = 1 if head == "shared" else self.n_way
        dim = getattr(self.body, "embedding_dim", hidden)
        self.head_weight = nn.Parameter(torch.zeros(rows, dim))
        self.head_bias = nn.Parameter(torch.zeros(rows))

    def export_problem(self) -> str:
        """The export rebuilds MAML's forward on a Conv-4 with batch statistics: a learner that changes it cannot."""
        cls = type(self)
        if not self._fast_body or any(getattr(cls, m) is not getattr(MAML, m) for m in EXPORTED_FORWARD):
            return "its network is not MAML's Conv-4 with a linear head, the one form the export rebuilds"
        return ""

    # -- the functional model ------------------------------------------------------------
    def initial_fast_weights(self, n_way: int) -> Params:
        """The meta-parameters as a dict, the head expanded to ``n_way`` rows (no copy, no write)."""
        params = {f"body.{k}": v for k, v in self.body.named_parameters()}
        return self.fast_from(params, self.head_weight, self.head_bias, n_way)

    @staticmethod
    def fast_from(fast: Params, w: torch.Tensor, b: torch.Tensor, n_way: int) -> Params:
        """Body weights plus the head (w, b) expanded to ``n_way`` rows."""
        fast = dict(fast)
        if w.shape[0] != n_way:
            w, b = w.mean(0, keepdim=True), b.mean(0, keepdim=True)
            w, b = w.expand(n_way, -1), b.expand(n_way)
        fast["head.weight"], fast["head.bias"] = w, b
        return fast

    def inner_keys(self, fast: Params) -> list[str]:
        """The fast weights the inner loop updates (all of them for MAML)."""
        return list(fast)

    def inner_update(self, fast: Params, grads: Params, step: int, lr: float | None = None) -> Params:
        """One inner SGD step; subclasses may learn the step size."""
        lr = self.inner_lr if lr is None else lr
        return {k: (fast[k] - lr * grads[k]) if k in grads else fast[k] for k in fast}

    def channels_last(self) -> bool:
        """Lay activations out NHWC (``memory_format="channels_last"``, with the Conv-4 fast forward)?

        Opt-in: CPU pooling is faster NHWC, but CPU batch norm loses digits NHWC when a channel's mean is large
        against its spread, which moves float32 meta-gradients (``python -m bench.maml_speed --variants``).
        Compiled, it costs nothing: inductor computes batch norm itself.
        """
        return self._fast_body and self.memory_format == "channels_last"

    def _embed(self, body: Params, x: torch.Tensor) -> torch.Tensor:
        if self._fast_body:
            return batch_stats_embed(self.body, body, x, self.channels_last())
        return functional_forward(self.body, body, x).flatten(1)

    def features_fast(self, fast: Params, x: torch.Tensor) -> torch.Tensor:
        body = {k[5:]: v for k, v in fast.items() if k.startswith("body.")}
        if self.bn == "per_example":
            # Each image is a batch of one: batch norm then uses that image's own statistics.
            def one(image: torch.Tensor) -> torch.Tensor:
                return self._embed(body, image.unsqueeze(0)).squeeze(0)

            return vmap(one)(x)
        return self._embed(body, x)

    def forward_fast(self, fast: Params, x: torch.Tensor) -> torch.Tensor:
        return self.features_fast(fast, x) @ fast["head.weight"].T + fast["head.bias"]

    def _support_loss(self, adapted: Params, frozen: Params, x: torch.Tensor, y: torch.Tensor):
        logits = self.forward_fast({**frozen, **adapted}, x)
        loss = F.cross_entropy(logits, y)
        return loss, (loss.detach(), (logits.argmax(-1) == y).float().mean())

    def inner_loop(
        self,
        fast: Params,
        x: torch.Tensor,
        y: torch.Tensor,
        steps: int,
        first_order: bool,
        on_step: OnStep | None = None,
        lr: float | None = None,
    ) -> Params:
        """``steps`` SGD steps on the support loss; returns new fast weights."""
        keys = self.inner_keys(fast)
        for step in range(steps):
            adapted = {k: fast[k] for k in keys}
            frozen = {k: v for k, v in fast.items() if k not in adapted}
            grads, (loss, acc) = grad(self._support_loss, has_aux=True)(adapted, frozen, x, y)
            if on_step is not None:
                on_step(step, loss, acc, fast)
            if first_order:
                grads = {k: g.detach() for k, g in grads.items()}
            fast = self.inner_update(fast, grads, step, lr)
        return fast

    # -- meta-training -------------------------------------------------------------------------
    def task_query_loss(
        self, fast0: Params, task: Task, steps: int, first_order: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Query loss and accuracy of a task (support x, y, query x, y) after ``steps`` inner steps from ``fast0``."""
        sx, sy, qx, qy = task
        fast = self.inner_loop(fast0, sx, sy, steps, first_order)
        logits = self.forward_fast(fast, qx)
        return F.cross_entropy(logits, qy), (logits.argmax(-1) == qy).float().mean()

    def batching_strategy(self, device: torch.device, second_order_steps: int = 0) -> batching.Strategy:
        """How a meta-batch on ``device`` runs (`task_batching.choose`); ``second_order_steps``: 0 for first order."""
        return batching.choose(
            self.task_batching,
            device,
            torch.get_num_threads(),
            self.bn,
            second_order_steps,
            grouped=self.runs_grouped and self._fast_body,
            compiled=self.runs_compiled,
        )

    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean over the tasks of `task_query_loss` after the training inner loop, and the mean accuracy."""
        steps = 0 if self.first_order else self.inner_steps
        strategy = self.batching_strategy(tasks.support_x.device, steps)
        losses, accs = strategy.query_losses(self, tasks, self.inner_steps, self.first_order)
        return losses.mean(), accs.mean()

    def meta_train_step(self, tasks: TaskBatch, grad_hook: Callable | None = None) -> StepStats:
        """One outer update with the gradient of `meta_loss`, computed as the batching strategy computes it.

        The loop and threads backpropagate each task's loss as soon as they have it: only one task's graph
        (one per thread) is alive at a time, which cuts the peak memory of a second-order meta-iteration
        (python -m bench.maml_scaling measures it).
        """
        tasks = tasks.to(self.device)
        strategy = self.batching_strategy(self.device, 0 if self.first_order else self.inner_steps)
        return strategy.train_step(self, tasks, grad_hook)

    # -- adaptation ------------------------------------------------------------------------------
    def adapt_options(self) -> list[AdaptOption]:
        """Inner steps and learning rate, around the values the learner was meta-trained with."""
        return gradient_step_options(
            self.test_inner_steps,
            # 50: the most any shipped card chose on validation (`calibrate-steps`) for some task size
            max(50, 2 * self.test_inner_steps),
            self.inner_lr,
            ("inner steps", "gradient steps on the support set before predicting"),
            ("inner learning rate", f"step size of the inner loop ({self.inner_lr:g} is the meta-trained one)"),
        )

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> FunctionalPredictor:
        return self._adapt(support_x, support_y, n_steps, inner_lr, every_step=False)[-1]

    def adapt_steps(
        self, support_x: torch.Tensor, support_y: torch.Tensor, max_steps: int, inner_lr: float | None = None
    ) -> list[FunctionalPredictor]:
        """The predictors after 0, 1, ..., ``max_steps`` inner steps, from one run of the inner loop."""
        return self._adapt(support_x, support_y, max_steps, inner_lr, every_step=True)

    def _adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None,
        inner_lr: float | None,
        every_step: bool,
    ) -> list[FunctionalPredictor]:
        n_way = self.check_support(support_x, support_y)
        steps, _ = self.inner_settings(n_steps, inner_lr)  # None stays None below: subclasses read it
        support_x, support_y = support_x.to(self.device), support_y.to(self.device)
        trace: list[StepRecord] = []
        snapshots: list[Params] = []

        def record(step: int, loss: torch.Tensor, acc: torch.Tensor, fast: Params) -> None:
            trace.append(StepRecord(step, float(loss), float(acc)))
            if every_step:
                snapshots.append({k: v.detach() for k, v in fast.items()})

        # Detached leaves: gradients w.r.t. these never reach the meta-parameters' .grad.
        fast0 = {k: v.detach() for k, v in self.initial_fast_weights(n_way).items()}
        with torch.enable_grad():
            fast = self.inner_loop(fast0, support_x, support_y, steps, first_order=True, on_step=record, lr=inner_lr)
        fast = {k: v.detach() for k, v in fast.items()}
        with torch.no_grad():
            logits = self.forward_fast(fast, support_x)
            record(steps, F.cross_entropy(logits, support_y), (logits.argmax(-1) == support_y).float().mean(), fast)
        if not every_step:
            return [FunctionalPredictor(self, fast, support_x, trace)]
        # Snapshot k holds the weights after k steps; its trace is the loop's first k + 1 records.
        return [FunctionalPredictor(self, w, support_x, trace[: k + 1]) for k, w in enumerate(snapshots)]

    def episode_accuracies(
        self, tasks: TaskBatch, n_steps: int | None = None, inner_lr: float | None = None
    ) -> torch.Tensor:
        steps = self.test_inner_steps if n_steps is None else n_steps
        return batching.accuracies(self, tasks.to(self.device), steps, inner_lr)

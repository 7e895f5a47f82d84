"""MAML (Finn et al. 2017): meta-learn an initialisation that a few SGD steps adapt to a task.

Written functionally with ``torch.func``: the inner loop builds new parameter tensors from
the meta-parameters (`playground.models.functional.functional_forward` + ``torch.func.grad``)
and never writes to them, not even for the duration of a call as ``functional_call`` would, so
one shared model can serve any number of concurrent `adapt` calls. Second-order gradients
flow through the inner loop unless ``first_order`` is set. A meta-batch of tasks runs
in a Python loop, batched with ``torch.func.vmap``, or as one grouped network where task t's
channels are group t of every convolution (``task_batching="grouped"``; exact for any number of
inner steps, see `_batching`). ``task_batching="threads"`` runs a meta-training batch's tasks side by
side, one single-threaded worker per torch thread (`playground.algorithms.task_threads`).

Speed. With the default Conv-4 body (batch statistics only), the forward pass is
`playground.models.conv4.batch_stats_embed`: max-pooling before the ReLU (they commute, so the
results are bit for bit the module's, with a quarter of the ReLU work) and, opt-in with
``memory_format="channels_last"``, NHWC activations, where CPU pooling is far faster (see
`channels_last` for its cost in float32 accuracy). ``bench/maml_speed.py`` measures them
against a clone-per-task reference.

The classifier head. ``head="shared"`` (default) meta-learns one weight row and bias that
are copied to every class at the start of adaptation (as in "UnicornMAML", Ye & Chao
2022); the inner loop then pulls the copies apart. The initialisation is therefore the
same for every class order and for any number of ways, so one model adapts to 2- to
20-way tasks. ``head="per_class"`` is the paper's N-way head; adapting it to another N
starts every class from the mean row.

Batch norm (``bn``). ``bn="transductive"`` (default) uses the statistics of the batch it
sees, at meta-training and meta-test time (the papers' protocol): support statistics in
the inner loop, query-batch statistics for the predictions (see `Conv4`), so a query's
prediction depends on the other queries that share its batch. ``bn="per_example"``
normalises every image with its own per-channel statistics (mean and variance over the
image's spatial positions, like instance norm) and the same learned batch-norm scale and
shift: the body runs on each image alone (``torch.func.vmap`` over single-image batches),
in the inner loop, the outer loop and at prediction time alike. A prediction then depends
on the adapted weights and the image only, never on which other queries are predicted
with it. The mode changes what the body computes, so a model must be meta-trained in the
mode it is used in.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, vmap

from playground.algorithms.base import AdaptOption, MetaLearner, Predictor, StepRecord, StepStats, register
from playground.algorithms.task_threads import map_tasks
from playground.episodes import TaskBatch
from playground.models.conv4 import batch_stats_embed, batch_stats_embed_supported
from playground.models.exported import GroupStatsConv4
from playground.models.functional import functional_forward
from playground.precision import compile_autocast, compile_options

Params = dict[str, torch.Tensor]
# Called before each inner update with the step, the support loss and accuracy, and the weights they were measured at.
OnStep = Callable[[int, torch.Tensor, torch.Tensor, Params], None]
HEADS = ("shared", "per_class")
TASK_BATCHING = ("auto", "loop", "vmap", "grouped", "threads", "compiled")
MEMORY_FORMATS = ("contiguous", "channels_last")
BATCH_NORM = ("transductive", "per_example")
EXPORTED_FORWARD = ("forward_fast", "features_fast", "_embed")  # what `export_module` rebuilds


class FunctionalPredictor(Predictor):
    """A task-adapted set of fast weights, used without touching the meta-parameters."""

    def __init__(self, learner: MAML, fast: Params, support_x: torch.Tensor, trace: list[StepRecord]):
        self.learner, self.fast, self.support_x, self.trace = learner, fast, support_x, trace
        self.n_way = fast["head.weight"].shape[0]

    def _batch(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        # Transductive batch norm needs at least two images for batch statistics: a lone
        # query is normalised together with the support set instead of on its own.
        x = x.to(self.support_x.device)
        if x.shape[0] >= 2 or (x.shape[0] == 1 and self.learner.bn == "per_example"):
            return x, 0
        return torch.cat([self.support_x, x]), self.support_x.shape[0]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        batch, skip = self._batch(x)
        return self.learner.forward_fast(self.fast, batch)[skip:]

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        batch, skip = self._batch(x)
        return self.learner.features_fast(self.fast, batch)[skip:]

    def export_module(self, group: int = 1) -> nn.Module:
        """The adapted fast weights; batch statistics per group as `_batch` takes them (a lone image: with the
        support set; per-example batch norm: each image its own)."""
        learner, fast = self.learner, self.fast
        blocks = [
            tuple(fast.get(f"body.features.{i}.{k}") for k in ("0.weight", "0.bias", "1.weight", "1.bias"))
            for i in range(len(learner.body.features))
        ]
        per_example = learner.bn == "per_example"
        context = self.support_x if group == 1 and not per_example else None
        eps = learner.body.features[0][1].eps
        return GroupStatsConv4(blocks, eps, fast["head.weight"], fast["head.bias"], context, per_example)


@register
class MAML(MetaLearner):
    name = "maml"
    title = "MAML"
    trains_live = True
    backbones = ("conv4", "resnet12")

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
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        if task_batching not in TASK_BATCHING:
            raise ValueError(f"task_batching must be one of {TASK_BATCHING}, got {task_batching!r}")
        if bn not in BATCH_NORM:
            raise ValueError(f"bn must be one of {BATCH_NORM}, got {bn!r}")
        if memory_format not in MEMORY_FORMATS:
            raise ValueError(f"memory_format must be one of {MEMORY_FORMATS}, got {memory_format!r}")
        if inner_steps < 0 or test_inner_steps < 0:
            raise ValueError("inner steps must be >= 0")
        self.inner_lr, self.inner_steps, self.test_inner_steps = inner_lr, inner_steps, test_inner_steps
        self.first_order, self.head, self.hidden, self.task_batching = first_order, head, hidden, task_batching
        self.bn, self.memory_format = bn, memory_format
        self.body = model if model is not None else self.make_backbone(hidden, track_running_stats=False)
        # Conv-4 with batch statistics has a faster functional forward; any other body runs as a module.
        self._fast_body = batch_stats_embed_supported(self.body)
        if task_batching == "grouped" and not self._groupable():
            raise ValueError(
                "task_batching='grouped' needs MAML's own inner loop, bn='transductive' and a Conv-4 body "
                "with batch statistics"
            )
        if task_batching == "compiled" and not self._compilable():
            raise ValueError(
                "task_batching='compiled' needs MAML's own inner update and meta-loss (a learned step size, "
                "as Meta-SGD's, would not get its gradient)"
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
        return self._fast_from(params, self.head_weight, self.head_bias, n_way)

    @staticmethod
    def _fast_from(fast: Params, w: torch.Tensor, b: torch.Tensor, n_way: int) -> Params:
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

        Opt-in: CPU pooling is faster NHWC (``python -m bench.maml_speed --variants`` measures a
        meta-iteration), but torch's CPU batch norm is less exact NHWC: its statistics lose digits
        when a channel's mean is large against its spread, which moves float32 meta-gradients
        (float64 agrees). Compiled (``task_batching="compiled"``) it costs nothing: inductor
        computes batch norm itself.
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
    def _task_query_loss(self, fast0: Params, sx, sy, qx, qy, steps: int, first_order: bool):
        fast = self.inner_loop(fast0, sx, sy, steps, first_order)
        logits = self.forward_fast(fast, qx)
        return F.cross_entropy(logits, qy), (logits.argmax(-1) == qy).float().mean()

    def _groupable(self) -> bool:
        """Can a meta-batch run as one grouped network? Needs MAML's inner loop and forward, on a batch-stats Conv-4."""
        cls = type(self)
        return (
            self._fast_body
            and self.bn == "transductive"
            and all(getattr(cls, m) is getattr(MAML, m) for m in ("inner_loop", "forward_fast", "features_fast"))
        )

    def _compilable(self) -> bool:
        """Can each task's meta-gradient be one compiled function of the meta-parameters?"""
        cls = type(self)
        return all(getattr(cls, m) is getattr(MAML, m) for m in ("inner_update", "meta_loss", "initial_fast_weights"))

    def _batching(self, device: torch.device, second_order_steps: int = 0) -> str:
        """How a meta-batch runs: "loop", "vmap" or "grouped". vmap only where it is exact.

        vmap's batch-norm backward rule gives second-order meta-gradients that are off by
        about 0.1% once the inner loop has two or more steps with transductive batch norm
        (checked against float64 finite differences; functorch issue #534), so those runs
        never use vmap. With one step and ``head="per_class"`` it is off too (about 10% of the
        body's meta-gradient in float64, against the loop, finite differences and the
        clone-per-task reference of bench/reference_maml.py), so "auto" never uses vmap for
        second-order MAML with transductive batch norm. The grouped network uses the ordinary
        batch-norm op and is exact (tests/test_bench_reference.py).
        """
        if self.task_batching in ("grouped", "threads", "compiled"):
            return self.task_batching
        transductive_second_order = second_order_steps >= 1 and self.bn == "transductive"
        if self.task_batching == "auto":
            # On a CPU, tasks side by side on threads beat the loop and vmap and grouped lose to it
            # (python -m bench.maml_speed --variants). On a GPU batched tasks win; grouped stands in
            # where vmap is inexact.
            if device.type != "cuda":
                return "threads" if torch.get_num_threads() > 1 else "loop"
            if transductive_second_order:
                return "grouped" if self._groupable() else "loop"
            return "vmap"
        # An explicit "vmap" keeps vmap for one second-order step (the caller asked for it).
        inexact = transductive_second_order and second_order_steps >= 2
        return "vmap" if self.task_batching == "vmap" and not inexact else "loop"

    def _use_vmap(self, device: torch.device, second_order_steps: int = 0) -> bool:
        """Batch tasks with vmap? (See `_batching`.)"""
        return self._batching(device, second_order_steps) == "vmap"

    def _grouped_logits(self, fast: Params, x: torch.Tensor) -> torch.Tensor:
        """Logits [T, n, N] of T tasks at once, from fast weights [T, ...] and images [T, n, C, H, W]."""
        body = {k[5:]: v for k, v in fast.items() if k.startswith("body.")}
        z = batch_stats_embed(self.body, body, x, self.channels_last())
        return torch.baddbmm(fast["head.bias"].unsqueeze(1), z, fast["head.weight"].transpose(1, 2))

    def _grouped_support_loss(self, adapted: Params, frozen: Params, x: torch.Tensor, y: torch.Tensor):
        logits = self._grouped_logits({**frozen, **adapted}, x)
        # The sum over tasks of each task's mean loss: its gradient w.r.t. task t's weights is task t's own.
        return F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / y.shape[1]

    def _grouped_query_losses(self, tasks: TaskBatch, steps: int, first_order: bool):
        """Per-task query losses and accuracies [T], every task adapted at once in one grouped network."""
        t = len(tasks)
        fast0 = self.initial_fast_weights(int(tasks.support_y[0].max()) + 1)
        fast = {k: v.expand(t, *v.shape) for k, v in fast0.items()}
        keys = self.inner_keys(fast)
        for step in range(steps):
            adapted = {k: fast[k] for k in keys}
            frozen = {k: v for k, v in fast.items() if k not in adapted}
            grads = grad(self._grouped_support_loss)(adapted, frozen, tasks.support_x, tasks.support_y)
            if first_order:
                grads = {k: g.detach() for k, g in grads.items()}
            fast = self.inner_update(fast, grads, step)
        logits = self._grouped_logits(fast, tasks.query_x)
        losses = F.cross_entropy(logits.flatten(0, 1), tasks.query_y.flatten(), reduction="none").view(t, -1)
        return losses.mean(1), (logits.argmax(-1) == tasks.query_y).float().mean(1)

    def batched_query_losses(self, tasks: TaskBatch, steps: int, first_order: bool):
        mode = self._batching(tasks.support_x.device, 0 if first_order else steps)
        if mode == "grouped":
            return self._grouped_query_losses(tasks, steps, first_order)
        fast0 = self.initial_fast_weights(int(tasks.support_y[0].max()) + 1)
        args = (tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y)
        if mode == "vmap":
            fn = lambda sx, sy, qx, qy: self._task_query_loss(fast0, sx, sy, qx, qy, steps, first_order)  # noqa: E731
            return vmap(fn, randomness="different")(*args)
        out = [self._task_query_loss(fast0, *[a[i] for a in args], steps, first_order) for i in range(len(tasks))]
        return torch.stack([o[0] for o in out]), torch.stack([o[1] for o in out])

    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        losses, accs = self.batched_query_losses(tasks, self.inner_steps, self.first_order)
        return losses.mean(), accs.mean()

    def meta_train_step(self, tasks: TaskBatch, grad_hook=None) -> StepStats:
        """One outer update. A loop over tasks backpropagates each task's loss as soon as it has it.

        The gradient is the one of `meta_loss` (up to float summation order), but only one task's
        graph is alive at a time: for second-order MAML, 5-way 1-shot, meta-batch 32, the peak memory
        of a meta-iteration drops about tenfold (python -m bench.maml_scaling), at the same speed.
        """
        tasks = tasks.to(self.device)
        steps = 0 if self.first_order else self.inner_steps
        mode = self._batching(self.device, steps)
        if mode == "compiled":
            return self._compiled_step(tasks, grad_hook)
        if type(self).meta_loss is not MAML.meta_loss or mode not in ("loop", "threads"):
            return super().meta_train_step(tasks, grad_hook)
        n_way = int(tasks.support_y[0].max()) + 1
        losses, accs = [], []
        self.train()
        try:
            self.optimizer.zero_grad(set_to_none=True)
            if mode == "threads":
                return self._threaded_step(tasks, n_way, grad_hook)
            for t in range(len(tasks)):
                loss, acc = self._meta_batch_task_loss(tasks, t, n_way)
                (loss / len(tasks)).backward()
                losses.append(loss.detach())
                accs.append(acc)
            if grad_hook is not None:
                grad_hook(self)
            self.optimizer.step()
        finally:
            self.eval()
        return StepStats(float(torch.stack(losses).mean()), float(torch.stack(accs).mean()))

    def _meta_batch_task_loss(self, tasks: TaskBatch, t: int, n_way: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Task t's query loss and accuracy after the training inner loop."""
        # Fresh initial weights per task: their little graph (the head's expansion) is freed with the task's.
        task = (tasks.support_x[t], tasks.support_y[t], tasks.query_x[t], tasks.query_y[t])
        return self._task_query_loss(self.initial_fast_weights(n_way), *task, self.inner_steps, self.first_order)

    def _threaded_step(self, tasks: TaskBatch, n_way: int, grad_hook) -> StepStats:
        """The loop's outer update with the tasks run side by side on CPU threads (`task_threads.map_tasks`).

        Each task's meta-gradient is computed on its own and they are summed in task order, as the
        loop's backward calls sum them, so the result equals the loop's up to the kernels' own float
        order on one thread.
        """
        params = [p for p in self.parameters() if p.requires_grad]

        def task_grads(t: int):
            loss, acc = self._meta_batch_task_loss(tasks, t, n_way)
            grads = torch.autograd.grad(loss / len(tasks), params, allow_unused=True)
            return grads, loss.detach(), acc.detach()

        results = map_tasks(task_grads, len(tasks))
        for i, p in enumerate(params):
            for grads, _, _ in results:
                if grads[i] is not None:
                    p.grad = grads[i].clone() if p.grad is None else p.grad.add_(grads[i])
        if grad_hook is not None:
            grad_hook(self)
        self.optimizer.step()
        losses, accs = torch.stack([r[1] for r in results]), torch.stack([r[2] for r in results])
        return StepStats(float(losses.mean()), float(accs.mean()))

    def _compiled_task_grad(self) -> Callable:
        """``torch.compile`` of one task's meta-gradient, w.r.t. the meta-parameters by name.

        A compiled function cannot be differentiated twice, so the whole task (inner loop, query
        loss) is one ``torch.func.grad``, traced as a single graph: the loop's meta-gradient up to
        float order. It pays once a run is long enough to repay about a minute of compiling per
        process and per task size (python -m bench.maml_speed --compile --malloc keep;
        bench.process_throughput --rank-batching compiled --malloc keep).
        """

        def task_loss(params: Params, n_way: int, sx, sy, qx, qy):
            body = {k: v for k, v in params.items() if k.startswith("body.")}
            fast0 = self._fast_from(body, params["head_weight"], params["head_bias"], n_way)
            fast = self.inner_loop(fast0, sx, sy, self.inner_steps, self.first_order)
            logits = self.forward_fast(fast, qx)
            loss = F.cross_entropy(logits, qy)
            return loss, (loss.detach(), (logits.argmax(-1) == qy).float().mean())

        return self._compile_once("_compiled_grad", lambda: grad(task_loss, has_aux=True))

    def _compile_once(self, key: str, build: Callable[[], Callable]) -> Callable:
        """``torch.compile(build())``, made on first use and kept under ``key`` for the learner's life."""
        autocast = compile_autocast()
        if autocast is not None:
            key = f"{key}_{autocast}"  # a graph traced under autocast is another graph
        fn = self.__dict__.get(key)
        if fn is None:
            fn = torch.compile(build(), options=compile_options(autocast))
            # Kept out of the module's attributes proper: not a parameter, not saved, not copied.
            self.__dict__[key] = fn
        return fn

    def _compiled_step(self, tasks: TaskBatch, grad_hook) -> StepStats:
        """The loop's outer update with each task's meta-gradient from `_compiled_task_grad`."""
        meta_grad = self._compiled_task_grad()
        n_way = int(tasks.support_y[0].max()) + 1
        params = {k: p.detach() for k, p in self.named_parameters() if p.requires_grad}
        total: Params = {}
        losses, accs = [], []
        self.train()
        try:
            for t in range(len(tasks)):
                task = (tasks.support_x[t], tasks.support_y[t], tasks.query_x[t], tasks.query_y[t])
                grads, (loss, acc) = meta_grad(params, n_way, *task)
                for k, g in grads.items():  # summed in task order, as the loop's backward calls sum them
                    total[k] = g / len(tasks) if k not in total else total[k] + g / len(tasks)
                losses.append(loss.detach())
                accs.append(acc.detach())
            self.optimizer.zero_grad(set_to_none=True)
            for k, p in self.named_parameters():
                if k in total:
                    p.grad = total[k]
            if grad_hook is not None:
                grad_hook(self)
            self.optimizer.step()
        finally:
            self.eval()
        return StepStats(float(torch.stack(losses).mean()), float(torch.stack(accs).mean()))

    # -- adaptation ------------------------------------------------------------------------------
    def adapt_options(self) -> list[AdaptOption]:
        """Inner steps and learning rate, around the values the learner was meta-trained with."""
        lr = float(self.inner_lr)
        return [
            AdaptOption(
                "n_steps",
                "inner steps",
                self.test_inner_steps,
                0,
                # 50: the most any shipped card chose on validation (`calibrate-steps`) for some task size
                max(50, 2 * self.test_inner_steps),
                integer=True,
                help="gradient steps on the support set before predicting",
            ),
            AdaptOption(
                "inner_lr",
                "inner learning rate",
                lr,
                lr / 100,
                lr * 10,
                help=f"step size of the inner loop ({lr:g} is what it was meta-trained with)",
            ),
        ]

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
        tasks = tasks.to(self.device)
        with torch.enable_grad():
            fast0 = {k: v.detach() for k, v in self.initial_fast_weights(int(tasks.support_y[0].max()) + 1).items()}

            def one(sx, sy, qx, qy):
                fast = self.inner_loop(fast0, sx, sy, steps, first_order=True, lr=inner_lr)
                return (self.forward_fast(fast, qx).argmax(-1) == qy).float().mean()

            if self._use_vmap(tasks.support_x.device):
                return vmap(one)(tasks.support_x, tasks.support_y, tasks.query_x, tasks.query_y).detach()
            return torch.stack(
                [
                    one(tasks.support_x[i], tasks.support_y[i], tasks.query_x[i], tasks.query_y[i])
                    for i in range(len(tasks))
                ]
            ).detach()

"""Reptile (Nichol, Achiam & Schulman 2018): move the initialisation toward task-adapted weights.

For each task of a meta-batch, ``inner_steps`` steps of SGD (or Adam, ``inner_optimizer``)
fit a copy of the meta-weights to all of the task's images (support and query: Reptile
has no support/query split at meta-training time). The meta-update then treats
``meta-weights - mean(adapted weights)`` as a gradient and hands it to the outer
optimiser: with ``outer_optimizer="sgd"`` and ``outer_lr=1`` the meta-weights become the
mean of the adapted weights; ``outer_lr=eps < 1`` is the paper's interpolation
``w += eps * (mean(w_adapted) - w)``. The default outer Adam rescales that direction
per weight, like the paper's Adam-style variants. No gradient flows through the inner
loop: Reptile is first-order by construction.

The functional model, the classifier head, batch norm (``bn``) and `adapt` are MAML's:
`adapt` runs the same inner loop (``inner_optimizer`` included) on the support set for
``test_inner_steps`` steps. A head row that is expanded to the task's N rows (``head=
"shared"``, or ``"per_class"`` with another N) moves toward the mean of the adapted rows.
With the SGD inner loop that mean never changes, since a cross-entropy gradient sums to
zero over the classes, so a shared head stays at its zero initialisation and Reptile
meta-learns the body under it; the Adam inner loop does move it.

The inner Adam is the paper's: beta1 = 0, beta2 = 0.999, fresh state for every task, and
needs a much smaller ``inner_lr`` than SGD (about 1e-3). ``meta_train_step`` reports the
loss and accuracy of the adapted weights on the images they were fit to (a training
fit, not held-out accuracy: validation episodes measure that).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from playground.algorithms.base import StepStats, one_of, register
from playground.algorithms.fast_weights import OnStep, Params
from playground.algorithms.maml import MAML
from playground.algorithms.task_batching import compile_once
from playground.algorithms.task_threads import map_tasks
from playground.data.episodes import TaskBatch

INNER_OPTIMIZERS = ("sgd", "adam")
OUTER_OPTIMIZERS = ("adam", "sgd")
ADAM_BETAS = (0.0, 0.999)
ADAM_EPS = 1e-8


@register
class Reptile(MAML):
    name = "reptile"
    title = "Reptile"
    # Its own inner loop (SGD or Adam) and meta-update, neither of which the grouped network computes;
    # "compiled" compiles each task's fit (`_fit_task`), not MAML's meta-gradient.
    runs_grouped = False
    runs_compiled = True

    def __init__(
        self,
        *,
        inner_lr: float = 0.1,
        inner_steps: int = 5,
        test_inner_steps: int = 10,
        inner_optimizer: str = "sgd",
        outer_optimizer: str = "adam",
        **base,
    ):
        if base.get("first_order", False):
            raise ValueError("Reptile is first-order by construction: leave first_order unset")
        one_of("inner_optimizer", inner_optimizer, INNER_OPTIMIZERS)
        one_of("outer_optimizer", outer_optimizer, OUTER_OPTIMIZERS)
        if not inner_lr > 0:
            raise ValueError(f"inner_lr must be positive (got {inner_lr})")
        super().__init__(inner_lr=inner_lr, inner_steps=inner_steps, test_inner_steps=test_inner_steps, **base)
        self.inner_optimizer, self.outer_optimizer = inner_optimizer, outer_optimizer

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None and self.outer_optimizer == "sgd":
            self._optimizer = torch.optim.SGD(self.parameters(), lr=self.outer_lr)
        return super().optimizer

    # -- the inner loop ---------------------------------------------------------------------
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
        """MAML's SGD loop, or Adam with per-task state when ``inner_optimizer="adam"``."""
        if self.inner_optimizer == "sgd":
            return super().inner_loop(fast, x, y, steps, first_order, on_step, lr)
        lr = self.inner_lr if lr is None else lr
        beta1, beta2 = ADAM_BETAS
        keys = self.inner_keys(fast)
        m = {k: torch.zeros_like(fast[k]) for k in keys}
        v = {k: torch.zeros_like(fast[k]) for k in keys}
        for step in range(steps):
            adapted = {k: fast[k] for k in keys}
            frozen = {k: t for k, t in fast.items() if k not in adapted}
            grads, (loss, acc) = grad(self._support_loss, has_aux=True)(adapted, frozen, x, y)
            if on_step is not None:
                on_step(step, loss, acc, fast)
            if first_order:
                grads = {k: g.detach() for k, g in grads.items()}
            m = {k: beta1 * m[k] + (1 - beta1) * grads[k] for k in keys}
            v = {k: beta2 * v[k] + (1 - beta2) * grads[k] ** 2 for k in keys}
            c1, c2 = 1 - beta1 ** (step + 1), 1 - beta2 ** (step + 1)
            fast = {
                k: fast[k] - lr * (m[k] / c1) / ((v[k] / c2).sqrt() + ADAM_EPS) if k in m else fast[k] for k in fast
            }
        return fast

    # -- meta-training --------------------------------------------------------------------------
    def _fit_task(self, fast0: Params, x: torch.Tensor, y: torch.Tensor):
        fast = self.inner_loop(fast0, x, y, self.inner_steps, first_order=True)
        fast = {k: t.detach() for k, t in fast.items()}
        logits = self.forward_fast(fast, x).detach()
        return fast, F.cross_entropy(logits, y), (logits.argmax(-1) == y).float().mean()

    def adapted_weights(self, tasks: TaskBatch) -> tuple[Params, torch.Tensor, torch.Tensor]:
        """Fast weights fit to each task's images, stacked [B, ...]; their fit loss and accuracy [B]."""
        tasks = tasks.to(self.device)
        n_way = int(tasks.support_y[0].max()) + 1
        x = torch.cat([tasks.support_x, tasks.query_x], 1)
        y = torch.cat([tasks.support_y, tasks.query_y], 1)
        fast0 = {k: t.detach() for k, t in self.initial_fast_weights(n_way).items()}
        strategy = self.batching_strategy(x.device).name
        with torch.enable_grad():
            if strategy == "vmap":
                return vmap(lambda xi, yi: self._fit_task(fast0, xi, yi), randomness="different")(x, y)
            if strategy == "threads":  # grad mode is per thread; workers start with it on
                out = map_tasks(lambda i: self._fit_task(fast0, x[i], y[i]), len(tasks))
            elif strategy == "compiled":
                fit = compile_once(self, "_compiled_fit", lambda: self._fit_task)
                out = [fit(fast0, x[i], y[i]) for i in range(len(tasks))]
            else:  # the loop ("grouped" is refused: see runs_grouped)
                out = [self._fit_task(fast0, x[i], y[i]) for i in range(len(tasks))]
        fast = {k: torch.stack([o[0][k] for o in out]) for k in fast0}
        return fast, torch.stack([o[1] for o in out]), torch.stack([o[2] for o in out])

    def meta_targets(self, adapted: Params) -> dict[str, torch.Tensor]:
        """The point each meta-parameter moves toward: the mean over tasks of its adapted weights.

        A head that was expanded to N rows maps back to the meta-head by the mean over rows
        (the rows were all copied from it), unless the shapes already agree.
        """
        mean = {k: t.mean(0) for k, t in adapted.items()}
        targets = {f"body.{k}": mean[f"body.{k}"] for k, _ in self.body.named_parameters()}
        for key, param in (("head.weight", self.head_weight), ("head.bias", self.head_bias)):
            t = mean[key]
            if t.shape != param.shape:
                t = t.mean(0, keepdim=True).expand_as(param)
            targets[key.replace(".", "_")] = t
        return targets

    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError("Reptile's meta-update is not the gradient of a loss: use meta_train_step")

    def meta_train_step(self, tasks: TaskBatch, grad_hook=None) -> StepStats:
        """Set each meta-parameter's ``.grad`` to ``w - mean(adapted w)`` and step the outer optimiser."""
        self.train()
        try:
            adapted, losses, accs = self.adapted_weights(tasks)
            targets = self.meta_targets(adapted)
            self.optimizer.zero_grad(set_to_none=True)
            for name, p in self.named_parameters():
                if p.requires_grad and name in targets:
                    p.grad = (p.detach() - targets[name]).contiguous()
            if grad_hook is not None:
                grad_hook(self)
            self.optimizer.step()
        finally:
            self.eval()
        return StepStats(float(losses.mean()), float(accs.mean()))

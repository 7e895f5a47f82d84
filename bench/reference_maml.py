"""A plain reference for MAML and Reptile, written the way most meta-learning libraries do it.

For every task of a meta-batch: clone the model (learn2learn's ``clone_module``: the clone's
parameters are ``p.clone()``, so gradients flow back to the original), take inner SGD steps
with ``torch.autograd.grad(loss, params, create_graph=True)`` and write the updated tensors
into the clone (learn2learn's ``update_module``), compute the query loss and call
``backward`` on it (the per-task backward of learn2learn's examples); then one Adam step.
The Reptile reference is the plain loop: ``copy.deepcopy`` per task, SGD on the task's
images, then ``meta-weights - mean(adapted weights)`` handed to Adam as the gradient.

Architecture and hyperparameters match `playground`'s MAML with ``head="per_class"``:
Conv-4 (``track_running_stats=False``: batch norm always uses the batch's statistics, the
transductive protocol) and a linear N-way head. `meta_gradient_gap` checks that the
reference and `playground` compute the same meta-gradient.

    python -c "from bench.reference_maml import meta_gradient_gap; print(meta_gradient_gap())"
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from playground.algorithms.maml import MAML
from playground.data.episodes import TaskBatch
from playground.models import Conv4


def clone_module(module: nn.Module) -> nn.Module:
    """A shallow copy of ``module`` whose parameters are ``p.clone()``: differentiable back to ``p``."""
    clone = copy.copy(module)
    clone._parameters = {k: (None if p is None else p.clone()) for k, p in module._parameters.items()}
    clone._buffers = {k: (None if b is None else b.clone()) for k, b in module._buffers.items()}
    clone._modules = {k: (None if m is None else clone_module(m)) for k, m in module._modules.items()}
    return clone


def update_module(module: nn.Module, updates: dict[str, torch.Tensor]) -> None:
    """Replace named parameters of a cloned module by (non-leaf) tensors, in place."""
    for name, value in updates.items():
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        owner._parameters[attr] = value


def reference_model(n_way: int, hidden: int = 64) -> nn.Module:
    """Conv-4 with batch statistics only and a linear N-way head, as in learn2learn's Omniglot example."""
    return Conv4(hidden=hidden, out_features=n_way, track_running_stats=False)


def load_from_playground(model: nn.Module, learner: MAML) -> nn.Module:
    """Copy a `playground` MAML's meta-parameters (``head="per_class"``) into a reference model."""
    n_way = model.head.out_features
    fast = learner.initial_fast_weights(n_way)
    state = {k[5:]: v for k, v in fast.items() if k.startswith("body.")}
    state["head.weight"], state["head.bias"] = fast["head.weight"], fast["head.bias"]
    with torch.no_grad():
        model.load_state_dict({k: v.detach().clone() for k, v in state.items()})
    return model


class ReferenceMAML:
    """Clone-per-task MAML with ``autograd.grad(create_graph=True)``; ``first_order`` drops the second order."""

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        first_order: bool = False,
        outer_lr: float = 1e-3,
    ):
        self.model, self.inner_lr, self.inner_steps, self.first_order = model, inner_lr, inner_steps, first_order
        self.optimizer = torch.optim.Adam(model.parameters(), lr=outer_lr)

    def adapt(self, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
        """A clone of the model after ``inner_steps`` SGD steps on (x, y)."""
        learner = clone_module(self.model)
        for _ in range(self.inner_steps):
            names, params = zip(*learner.named_parameters())
            loss = F.cross_entropy(learner(x), y)
            grads = torch.autograd.grad(loss, params, create_graph=not self.first_order)
            update_module(learner, {n: p - self.inner_lr * g for n, p, g in zip(names, params, grads)})
        return learner

    def accumulate_meta_gradient(self, tasks: TaskBatch) -> tuple[float, float]:
        """Add the mean query loss's gradient to ``.grad``, one backward per task; returns loss and accuracy."""
        total_loss, total_acc = 0.0, 0.0
        for i in range(len(tasks)):
            learner = self.adapt(tasks.support_x[i], tasks.support_y[i])
            logits = learner(tasks.query_x[i])
            loss = F.cross_entropy(logits, tasks.query_y[i])
            (loss / len(tasks)).backward()
            total_loss += float(loss.detach())
            total_acc += float((logits.argmax(-1) == tasks.query_y[i]).float().mean())
        return total_loss / len(tasks), total_acc / len(tasks)

    def meta_train_step(self, tasks: TaskBatch) -> tuple[float, float]:
        self.optimizer.zero_grad(set_to_none=True)
        stats = self.accumulate_meta_gradient(tasks)
        self.optimizer.step()
        return stats


class ReferenceReptile:
    """Reptile as a plain loop: deepcopy per task, SGD on all its images, Adam on ``w - mean(w_task)``."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.1, inner_steps: int = 5, outer_lr: float = 1e-3):
        self.model, self.inner_lr, self.inner_steps = model, inner_lr, inner_steps
        self.optimizer = torch.optim.Adam(model.parameters(), lr=outer_lr)

    def meta_train_step(self, tasks: TaskBatch) -> tuple[float, float]:
        x = torch.cat([tasks.support_x, tasks.query_x], 1)
        y = torch.cat([tasks.support_y, tasks.query_y], 1)
        mean = [torch.zeros_like(p) for p in self.model.parameters()]
        total_loss, total_acc = 0.0, 0.0
        for i in range(len(tasks)):
            learner = copy.deepcopy(self.model)
            opt = torch.optim.SGD(learner.parameters(), lr=self.inner_lr)
            for _ in range(self.inner_steps):
                opt.zero_grad()
                F.cross_entropy(learner(x[i]), y[i]).backward()
                opt.step()
            with torch.no_grad():
                logits = learner(x[i])
                total_loss += float(F.cross_entropy(logits, y[i]))
                total_acc += float((logits.argmax(-1) == y[i]).float().mean())
                for m, p in zip(mean, learner.parameters()):
                    m.add_(p, alpha=1 / len(tasks))
        self.optimizer.zero_grad(set_to_none=True)
        for p, m in zip(self.model.parameters(), mean):
            p.grad = p.detach() - m
        self.optimizer.step()
        return total_loss / len(tasks), total_acc / len(tasks)


def reference_meta_gradients(
    learner: MAML, tasks: TaskBatch, inner_steps: int, first_order: bool = False
) -> dict[str, torch.Tensor]:
    """The reference's meta-gradient for one meta-batch, from ``learner``'s weights, by `playground` names."""
    n_way = int(tasks.support_y[0].max()) + 1
    # Convert before loading: loading float64 weights into a float32 model would round them.
    model = reference_model(n_way, learner.hidden).to(device=tasks.support_x.device, dtype=tasks.support_x.dtype)
    load_from_playground(model, learner)
    ReferenceMAML(model, learner.inner_lr, inner_steps, first_order).accumulate_meta_gradient(tasks)
    grads = {f"body.{k}": p.grad for k, p in model.named_parameters() if not k.startswith("head.")}
    grads["head_weight"], grads["head_bias"] = model.head.weight.grad, model.head.bias.grad
    return grads


def playground_meta_gradients(learner: MAML, tasks: TaskBatch) -> dict[str, torch.Tensor]:
    """`playground` MAML's meta-gradient for one meta-batch (its own ``inner_steps`` and ``first_order``)."""
    learner.zero_grad(set_to_none=True)
    learner.train()
    try:
        loss, _ = learner.meta_loss(tasks)
        loss.backward()
    finally:
        learner.eval()
    return {k: p.grad.detach().clone() for k, p in learner.named_parameters()}


def meta_gradient_gap(
    hidden: int = 16,
    n_tasks: int = 2,
    inner_steps: int = 1,
    first_order: bool = False,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    **options,
) -> tuple[float, float]:
    """Largest absolute gap between the two meta-gradients on random 5-way 1-shot tasks, and the largest gradient.

    Both start from the same weights (a random non-zero head, so every term of the gradient
    is exercised) and see the same tasks; ``options`` go to `playground`'s MAML.
    """
    torch.manual_seed(seed)
    learner = MAML(
        n_way=5, hidden=hidden, head="per_class", inner_steps=inner_steps, first_order=first_order, **options
    ).to(dtype)
    with torch.no_grad():
        learner.head_weight.normal_(0, 0.5)
        learner.head_bias.normal_(0, 0.5)
    tasks = random_tasks(n_tasks, 5, 1, 3, dtype=dtype, seed=seed)
    ours = playground_meta_gradients(learner, tasks)
    ref = reference_meta_gradients(learner, tasks, inner_steps, first_order)
    gap = max(float((ours[k] - ref[k]).abs().max()) for k in ours)
    scale = max(float(ours[k].abs().max()) for k in ours)
    return gap, scale


def random_tasks(
    n_tasks: int,
    n_way: int,
    k_shot: int,
    n_query: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> TaskBatch:
    """A meta-batch of random-pixel tasks: speed does not depend on what the images show."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_way)
    return TaskBatch(
        torch.rand(n_tasks, n_way * k_shot, 1, 28, 28, generator=g, dtype=dtype).to(device),
        labels.repeat_interleave(k_shot).expand(n_tasks, -1).contiguous().to(device),
        torch.rand(n_tasks, n_way * n_query, 1, 28, 28, generator=g, dtype=dtype).to(device),
        labels.repeat_interleave(n_query).expand(n_tasks, -1).contiguous().to(device),
    )

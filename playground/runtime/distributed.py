"""Data-parallel meta-training across processes: `torchrun --nproc_per_node=N -m playground train ...`.

Every rank samples the same full meta-batch from the same seeded sampler, meta-trains on its
own equal share of the tasks, and all-reduces the meta-gradients to their mean before the
optimizer step. With equal shares the mean of the ranks' mean losses is the mean loss of the
whole batch, so the update is the one a single process makes, up to the order of float sums.

Two things would otherwise differ from one process, and are made to agree:

* Batch norm that keeps running statistics (the metric learners' encoders) normalises the
  whole meta-batch in one pass, so in training it is synchronised: its batch mean and variance
  are sums over every rank's images, and the backward pass sums their gradients too. The
  gradient-based learners' batch norm (no running statistics) normalises one task at a time
  and is left alone.
* Floating-point buffers that a step updates from its images (the running statistics, the
  pretrained baseline's mean feature) are averaged over the ranks after every step; each is
  linear in the batch mean, so the average is the full batch's value.

Without torchrun (no ``WORLD_SIZE`` > 1 in the environment) every helper is a no-op.
"""

from __future__ import annotations

import importlib
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from playground.algorithms import MetaLearner, StepStats, learner_class
from playground.data.episodes import TaskBatch


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    """This process's rank: the process group's, or before it is joined (or after it is left), torchrun's."""
    if dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0: the one process that prints, validates and writes checkpoints and logs."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group (gloo on CPU, nccl on CUDA); returns this rank's device."""
    if not launched():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # Imported before the group exists, not after (the first optimizer imports it): importing
        # dynamo afterwards keeps the gloo group's worker threads alive past destroy_process_group,
        # and at exit one of them may free a collective's tensors without the GIL and abort the
        # process ("terminate called without an active exception"; torch 2.14).
        importlib.import_module("torch._dynamo")

        # Rank 0 validates alone while the others wait in their next all-reduce: allow it time.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=1))
    return device


def _collective_device() -> torch.device:
    """Where the helpers' own small tensors go: nccl reduces GPU tensors only."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def check(algorithm: str, meta_batch: int) -> None:
    """Refuse, before any work, what cannot be split across the ranks exactly."""
    if world() == 1:
        return
    why = learner_class(algorithm).not_distributable
    if why:
        raise ValueError(f"{algorithm} cannot meta-train on several processes: {why}")
    if meta_batch % world():
        raise ValueError(
            f"--meta-batch {meta_batch} does not divide among {world()} processes; "
            "use a multiple of the process count, so every rank gets the same number of tasks"
        )


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on any rank (a stop signal may reach the ranks at different iterations)."""
    if world() == 1:
        return flag
    agreed = torch.tensor([int(flag)], dtype=torch.int32, device=_collective_device())
    dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
    return bool(agreed.item())


def shard(tasks: TaskBatch) -> TaskBatch:
    """This rank's equal share of the meta-batch."""
    if world() == 1:
        return tasks
    if len(tasks) % world():
        raise ValueError(f"a meta-batch of {len(tasks)} tasks does not divide among {world()} processes")
    return tasks.split(world(), rank())


def prepare(learner: nn.Module) -> None:
    """Give every rank rank 0's weights and buffers, and batch norm that sees the whole meta-batch."""
    if world() == 1:
        return
    for tensor in (*learner.parameters(), *learner.buffers()):
        dist.broadcast(tensor.data, src=0)
    for module in learner.modules():
        if type(module) is nn.BatchNorm2d and module.track_running_stats:
            # Swapping the class keeps the very same parameters and buffers: the optimizer,
            # the state dict and so the checkpoints do not change.
            module.__class__ = SyncBatchNorm2d


def _flat_all_reduce(tensors: list[torch.Tensor]) -> None:
    """Replace each tensor by its mean over the ranks, with one all-reduce."""
    if not tensors:
        return
    flat = torch.cat([t.flatten() for t in tensors])
    dist.all_reduce(flat)
    flat /= world()
    for t, mean in zip(tensors, flat.split([t.numel() for t in tensors])):
        t.copy_(mean.view_as(t))


def average_gradients(module: nn.Module) -> None:
    """All-reduce every parameter's ``.grad`` to its mean over the ranks (the ``grad_hook`` of a step)."""
    if world() == 1:
        return
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    # A parameter may have a gradient on one rank and none on another: agree first, so every rank
    # leaves exactly the same parameters at None (the optimizer skips them) and sums the rest.
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=_collective_device())
    dist.all_reduce(has_grad, op=dist.ReduceOp.MAX)
    summed = [p for p, has in zip(params, has_grad.tolist()) if has]
    for p in summed:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    _flat_all_reduce([p.grad for p in summed])


@torch.no_grad()
def average_buffers(module: nn.Module) -> None:
    """Average the floating-point buffers over the ranks (running statistics, running means)."""
    if world() > 1:
        _flat_all_reduce([b for b in module.buffers() if b.is_floating_point()])


def meta_train_step(learner: MetaLearner, tasks: TaskBatch) -> StepStats:
    """`learner.meta_train_step` on this rank's share of ``tasks``, all ranks updating as one process would."""
    if world() == 1:
        return learner.meta_train_step(tasks)
    stats = learner.meta_train_step(shard(tasks), grad_hook=average_gradients)
    average_buffers(learner)
    # The whole batch's loss and accuracy on every rank: logs match one process, and a
    # diverged loss stops every rank at once.
    both = torch.tensor([stats.loss, stats.accuracy], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(both)
    loss, accuracy = (both / world()).tolist()
    return StepStats(loss, accuracy)


class _AllReduceSum(torch.autograd.Function):
    """Sum over the ranks. Every rank's loss depends on every rank's input, so the gradients are summed too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose training statistics are those of every rank's images together (gloo or nccl).

    torch's own SyncBatchNorm runs on GPUs only; this one also runs on CPU processes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world() > 1):
            return super().forward(x)
        dims = (0, 2, 3)
        local = torch.cat([x.sum(dims), x.new_tensor([x.numel() / x.shape[1]])])
        total = _AllReduceSum.apply(local)
        count = total[-1].detach()
        mean = total[:-1] / count
        centred = x - mean.view(1, -1, 1, 1)
        # Two passes (mean, then the centred squares) for the precision of torch's own batch norm.
        var = _AllReduceSum.apply(centred.square().sum(dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * count / (count - 1), factor)  # unbiased, as torch keeps it
        y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y

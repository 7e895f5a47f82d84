"""ANIL (Raghu, Raghu, Bengio & Vinyals 2020): MAML whose inner loop adapts only the head.

"Almost No Inner Loop": the task-specific steps change only the classifier head, while
the outer loop still meta-trains everything, the body through the adapted head
(second-order unless ``first_order``). The body's features of the support set are
therefore computed once per task and the inner steps run on them, so adaptation costs one
forward pass of the body plus a few steps of a linear classifier.

Everything else (the head options, batch norm ``bn``, `adapt` and its predictor) is MAML's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import grad

from playground.algorithms.base import register
from playground.algorithms.fast_weights import OnStep, Params
from playground.algorithms.maml import MAML


def _head_loss(head: Params, features: torch.Tensor, y: torch.Tensor):
    logits = features @ head["head.weight"].T + head["head.bias"]
    loss = F.cross_entropy(logits, y)
    return loss, (loss.detach(), (logits.argmax(-1) == y).float().mean())


@register
class ANIL(MAML):
    name = "anil"
    title = "ANIL"
    # Its inner loop runs on the body's features of the support set, which the grouped network does not compute.
    runs_grouped = False

    def __init__(self, *, inner_lr: float = 0.4, inner_steps: int = 5, test_inner_steps: int = 10, **base):
        super().__init__(inner_lr=inner_lr, inner_steps=inner_steps, test_inner_steps=test_inner_steps, **base)

    def inner_keys(self, fast: Params) -> list[str]:
        """The head only."""
        return ["head.weight", "head.bias"]

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
        """MAML's loop on the head, with the support features computed once (the body does not change)."""
        if steps == 0:
            return fast
        features = self.features_fast(fast, x)
        keys = self.inner_keys(fast)
        for step in range(steps):
            head = {k: fast[k] for k in keys}
            grads, (loss, acc) = grad(_head_loss, has_aux=True)(head, features, y)
            if on_step is not None:
                on_step(step, loss, acc, fast)
            if first_order:
                grads = {k: g.detach() for k, g in grads.items()}
            fast = self.inner_update(fast, grads, step, lr)
        return fast

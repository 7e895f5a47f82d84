"""Meta-SGD (Li, Zhou, Chen & Li 2017): meta-learn the inner learning rate of every weight.

MAML with one learned step size per weight: the inner update is
``w <- w - alpha * grad`` where ``alpha`` has the shape of ``w`` (element-wise), starts
at ``inner_lr`` and is meta-trained with the initialisation by the same outer optimiser.
The rates are ordinary parameters (``inner_rates.<weight name>``, dots written as ``__``),
so they are saved in checkpoints; they are unconstrained, as in the paper (a rate may
turn negative). First-order training (``first_order``) still trains them: the last
inner step depends on them directly.

The rates travel through the inner loop inside the fast-weight dict (keys ``rate.<weight
name>``), never updated by it; `adapt` detaches them along with the weights, so test-time
adaptation cannot reach the meta-parameters. For a head expanded to N rows (``head=
"shared"``, or ``"per_class"`` with another N) the head's rates are expanded the same way.

``adapt(..., inner_lr=x)`` scales every learned rate by ``x / inner_lr`` (the
hyperparameter, the rates' initial value): ``inner_lr`` itself reproduces the learned
rates, twice it doubles all of them, keeping their learned ratios. With no ``inner_lr``
the learned rates are used as they are.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from playground.algorithms.base import AdaptOption, register
from playground.algorithms.fast_weights import Params
from playground.algorithms.maml import MAML

RATE = "rate."


def _rate_name(weight: str) -> str:
    return weight.replace(".", "__")


@register
class MetaSGD(MAML):
    name = "metasgd"
    title = "Meta-SGD"
    # The compiled step rebuilds a task's loss from the body and head alone: the rates would get no gradient.
    runs_compiled = False

    def __init__(
        self,
        *,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        test_inner_steps: int = 1,
        **base,
    ):
        if not (inner_lr > 0 and inner_lr < float("inf")):
            raise ValueError(f"inner_lr must be a positive finite number (got {inner_lr})")
        super().__init__(inner_lr=inner_lr, inner_steps=inner_steps, test_inner_steps=test_inner_steps, **base)
        shapes = {f"body.{k}": p.shape for k, p in self.body.named_parameters()}
        shapes["head.weight"], shapes["head.bias"] = self.head_weight.shape, self.head_bias.shape
        self.inner_rates = nn.ParameterDict(
            {_rate_name(k): nn.Parameter(torch.full(shape, float(inner_lr))) for k, shape in shapes.items()}
        )

    def learned_rates(self) -> dict[str, torch.Tensor]:
        """The learned step sizes by weight name (``body.…``, ``head.weight``, ``head.bias``)."""
        return {k.replace("__", "."): v for k, v in self.inner_rates.items()}

    def initial_fast_weights(self, n_way: int) -> Params:
        fast = super().initial_fast_weights(n_way)
        for k, rate in self.learned_rates().items():
            if k.startswith("head.") and rate.shape[0] != n_way:
                rate = rate.mean(0, keepdim=True).expand(n_way, *rate.shape[1:])
            fast[RATE + k] = rate
        return fast

    def inner_keys(self, fast: Params) -> list[str]:
        return [k for k in super().inner_keys(fast) if not k.startswith(RATE)]

    def adapt_options(self) -> list[AdaptOption]:
        steps, lr = super().adapt_options()
        help = f"{lr.default:g} uses the learned per-parameter rates; other values scale all of them alike"
        return [steps, replace(lr, label="inner learning rate (scale)", help=help)]

    def inner_update(self, fast: Params, grads: Params, step: int, lr: float | None = None) -> Params:
        """``w - scale * alpha_w * grad``; ``scale = lr / inner_lr`` when ``lr`` is given, else 1."""
        scale = 1.0 if lr is None else lr / self.inner_lr
        return {k: (fast[k] - scale * fast[RATE + k] * grads[k]) if k in grads else fast[k] for k in fast}

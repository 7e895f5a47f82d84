"""Meta-LSTM (Ravi & Larochelle, ICLR 2017, "Optimization as a model for few-shot learning").

A learned optimiser replaces MAML's SGD step. The learner's weights, flattened to one
vector theta, are the cell state of an LSTM that runs coordinate-wise: every weight is a
separate "batch" row of the same small network, so its parameters are shared across all
coordinates and it works for a learner of any size, including a head of any number of
ways. At inner step t, with the learner's support loss L_t and gradient g_t::

    x_t = [preprocess(g_t), preprocess(L_t)]                         (4 numbers a weight)
    h_t = LSTM(x_t, h_{t-1})                                         (``lstm_hidden`` units)
    f_t = sigmoid(W_f [h_t, theta_{t-1}, f_{t-1}] + b_f)             (forget gate)
    i_t = sigmoid(W_i [h_t, theta_{t-1}, i_{t-1}] + b_i)             (input gate: a learned step size)
    theta_t = f_t * theta_{t-1} - i_t * g_t

``preprocess`` is Andrychowicz et al.'s (2016): (log|x| / p, sign x) for |x| >= e^-p, else
(-1, e^p x), with p = 10, so gradients of very different magnitudes reach the LSTM on one
scale. theta_0, the cell state's initial value, is the learner's meta-learned
initialisation (MAML's meta-parameters: the Conv-4 body and the shared head row, see
`MAML`). The first LSTM's state and the previous gates start at zero for every task.

Initialisation, as the paper recommends: the gate weights are small (U(-0.01, 0.01)),
b_f = 5 (forget ~ 0.993) and b_i = logit(``inner_lr``), so meta-training starts from
(almost) plain SGD with step size ``inner_lr`` and learns to depart from it.

Gradients. As in the paper, the learner's gradient and loss are inputs treated as
constants (``first_order=True``, the default: no second derivatives, and the support
passes build no graph); the meta-gradient of the query loss still flows through the cell
updates (theta_t depends on theta_{t-1} directly and through the gates) to theta_0 and to
every parameter of the meta-learner. ``first_order=False`` differentiates through the
gradient input too (MAML-style second order; the loss input stays constant). The
meta-gradient's norm is clipped at ``grad_clip`` (0.25 in the paper; 0 turns it off)
inside `meta_train_step`, after any ``grad_hook`` (so a hook that all-reduces gradients
has them clipped globally).

The meta-learner's parameters travel through the inner loop inside the fast-weight dict
(keys ``lstm.<name>``, like Meta-SGD's rates), so `adapt` detaches them with the weights
and test-time adaptation can never reach the meta-parameters; the adapted weights returned
hold the learner's weights only.

``adapt(..., inner_lr=x)`` multiplies the input gate by ``x / inner_lr`` (the
hyperparameter, the gate's initial value): ``inner_lr`` itself, or none, reproduces the
learned update; twice it doubles every step. ``n_steps`` runs the LSTM for that many
updates (``test_inner_steps``; by default ``inner_steps``: the LSTM's gates depend on the
step through their state, and it was trained for that many).

The learner, the classifier head (``head``), batch norm (``bn``, transductive batch
statistics by default, as in the paper), the meta-batch loop, vmap or threads (``task_batching``),
`adapt`'s predictor and its trace (one record per step before each update, and one
after the last) are MAML's.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.func import grad

from playground.algorithms.base import StepStats, register
from playground.algorithms.fast_weights import OnStep, Params
from playground.algorithms.maml import MAML
from playground.data.episodes import TaskBatch

if TYPE_CHECKING:
    from playground.algorithms.base import AdaptOption

LSTM = "lstm."
PREPROCESS_P = 10.0  # Andrychowicz et al.'s p
FORGET_BIAS = 5.0  # sigmoid(5) = 0.9933: the learner starts by (almost) keeping its weights
GATE_INIT = 0.01  # U(-0.01, 0.01) for the gate weights, as in the paper's code


def preprocess(x: torch.Tensor, p: float = PREPROCESS_P) -> torch.Tensor:
    """[..., 2]: (log|x| / p, sign x) where |x| >= e^-p, else (-1, e^p x) (Andrychowicz et al. 2016)."""
    small = math.exp(-p)
    big = x.abs() >= small
    # Clamped before the log so the unused branch is finite: its gradient (first_order=False)
    # would otherwise be 0 * inf = nan.
    log = torch.log(x.abs().clamp_min(small)) / p
    return torch.stack([torch.where(big, log, -torch.ones_like(x)), torch.where(big, torch.sign(x), x / small)], -1)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@register
class MetaLSTM(MAML):
    name = "meta-lstm"
    title = "Meta-LSTM"
    trains_live = False
    # The grouped network runs MAML's SGD loop, not the LSTM's updates; the compiled step rebuilds a task's
    # weights from the body and head alone, without the LSTM's parameters.
    runs_grouped = False
    runs_compiled = False

    def __init__(
        self,
        *,
        inner_lr: float = 0.1,
        inner_steps: int = 5,
        test_inner_steps: int | None = None,
        first_order: bool = True,
        lstm_hidden: int = 20,
        grad_clip: float = 0.25,
        **base,
    ):
        if not (0 < inner_lr < 1):
            raise ValueError(f"inner_lr is the input gate's initial value and must lie in (0, 1) (got {inner_lr})")
        if lstm_hidden < 1:
            raise ValueError(f"lstm_hidden must be at least 1 (got {lstm_hidden})")
        if not grad_clip >= 0:
            raise ValueError(f"grad_clip must be >= 0 (0: no clipping; got {grad_clip})")
        super().__init__(
            inner_lr=inner_lr,
            inner_steps=inner_steps,
            # The LSTM's gates depend on the step through their state: by default, test with the
            # number of updates it was trained for (stored resolved, so checkpoints record it).
            test_inner_steps=inner_steps if test_inner_steps is None else test_inner_steps,
            first_order=first_order,
            **base,
        )
        self.lstm_hidden, self.grad_clip = lstm_hidden, grad_clip
        h = lstm_hidden
        bound = 1 / math.sqrt(h)  # nn.LSTMCell's default initialisation for the first layer

        def uniform(*shape: int, a: float) -> nn.Parameter:
            return nn.Parameter(torch.empty(shape).uniform_(-a, a))

        # The first LSTM's gates are stacked in the order input, forget, output, cell (the sigmoid
        # ones first, so one call covers them); the meta-learner's gates act on
        # [h_t, theta_{t-1}, previous gate]: lstm_hidden + 2 inputs.
        self.lstm = nn.ParameterDict(
            {
                "weight_ih": uniform(4 * h, 4, a=bound),
                "weight_hh": uniform(4 * h, h, a=bound),
                "bias": uniform(4 * h, a=bound),
                "forget_weight": uniform(h + 2, a=GATE_INIT),
                "forget_bias": nn.Parameter(torch.tensor(FORGET_BIAS)),
                "input_weight": uniform(h + 2, a=GATE_INIT),
                "input_bias": nn.Parameter(torch.tensor(_logit(inner_lr))),
            }
        )

    # -- the functional model ------------------------------------------------------------
    def initial_fast_weights(self, n_way: int) -> Params:
        """MAML's weights (theta_0) plus the meta-learner's parameters under ``lstm.``."""
        fast = super().initial_fast_weights(n_way)
        fast.update({LSTM + k: v for k, v in self.lstm.items()})
        return fast

    def inner_keys(self, fast: Params) -> list[str]:
        """The learner's weights: every coordinate of them is a cell of the LSTM."""
        return [k for k in fast if not k.startswith(LSTM)]

    def lstm_step(
        self,
        lstm: Params,
        theta: torch.Tensor,
        g: torch.Tensor,
        loss: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        scale: float = 1.0,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One update of the flat weights ``theta`` [n] given their gradient ``g`` [n] and the loss.

        ``state`` is (h, c) of the first LSTM ([lstm_hidden, n] each: coordinates last, so
        every gate is a contiguous block of rows) and the previous forget and input gates
        ([n] each); returns the new theta and state. ``scale`` multiplies the input gate
        (the step) without entering the LSTM's own state.
        """
        h, c, f_prev, i_prev = state
        hidden = h.shape[0]
        x = torch.cat([preprocess(g).T, preprocess(loss)[:, None].expand(2, g.shape[0]), h], 0)  # [4 + hidden, n]
        weight = torch.cat([lstm["weight_ih"], lstm["weight_hh"]], 1)
        gates = weight @ x + lstm["bias"][:, None]  # [4 * hidden, n]: input, forget, output, cell
        # split/chunk rather than slicing: their backward is one concatenation, not a zero fill per slice.
        sigmoid_gates, cell = gates.split([3 * hidden, hidden])
        i_lstm, f_lstm, o_lstm = torch.sigmoid(sigmoid_gates).chunk(3)
        c = f_lstm * c + i_lstm * torch.tanh(cell)
        h = o_lstm * torch.tanh(c)

        def gate(prefix: str, prev: torch.Tensor) -> torch.Tensor:
            w = lstm[f"{prefix}_weight"]
            # W [h_t, theta_{t-1}, prev] without materialising the concatenation.
            return torch.sigmoid(w[:hidden] @ h + theta * w[hidden] + prev * w[hidden + 1] + lstm[f"{prefix}_bias"])

        f, i = gate("forget", f_prev), gate("input", i_prev)
        return f * theta - scale * i * g, (h, c, f, i)

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
        """``steps`` LSTM updates of the learner's weights on the support loss; returns them (no ``lstm.`` keys)."""
        keys = self.inner_keys(fast)
        weights = {k: fast[k] for k in keys}
        if steps == 0:
            return weights
        lstm = {k[len(LSTM) :]: v for k, v in fast.items() if k.startswith(LSTM)}
        shapes = [weights[k].shape for k in keys]
        sizes = [s.numel() for s in shapes]
        theta = torch.cat([weights[k].reshape(-1) for k in keys])
        n = theta.shape[0]
        zeros = torch.zeros(self.lstm_hidden, n, dtype=theta.dtype, device=theta.device)
        state = (zeros, zeros, zeros[0], zeros[0])
        scale = 1.0 if lr is None else lr / self.inner_lr
        for step in range(steps):
            current = dict(zip(keys, (t.reshape(s) for t, s in zip(theta.split(sizes), shapes))))
            if first_order:
                # The paper's constant gradient input: the support pass builds no graph at all.
                current = {k: v.detach() for k, v in current.items()}
            grads, (loss, acc) = grad(self._support_loss, has_aux=True)(current, {}, x, y)
            if on_step is not None:
                on_step(step, loss, acc, current)
            g = torch.cat([grads[k].reshape(-1) for k in keys])
            theta, state = self.lstm_step(lstm, theta, g, loss, state, scale)
        return dict(zip(keys, (t.reshape(s) for t, s in zip(theta.split(sizes), shapes))))

    # -- meta-training -------------------------------------------------------------------------
    def meta_train_step(self, tasks: TaskBatch, grad_hook=None) -> StepStats:
        """MAML's outer step with the meta-gradient's norm clipped at ``grad_clip`` (after ``grad_hook``)."""

        def hook(learner: MetaLSTM) -> None:
            if grad_hook is not None:
                grad_hook(learner)
            if self.grad_clip > 0:
                nn.utils.clip_grad_norm_(self.parameters(), self.grad_clip)

        return super().meta_train_step(tasks, grad_hook=hook)

    # -- adaptation ------------------------------------------------------------------------------
    def adapt_options(self) -> list[AdaptOption]:
        """MAML's test-time options, described for the LSTM: ``inner_lr`` scales its learned input gate."""
        changes = {
            "n_steps": {"label": "updates", "help": "updates of the LSTM meta-learner on the support set"},
            "inner_lr": {
                "label": "inner learning rate (scale)",
                "help": f"{self.inner_lr:g} uses the learned update as it is; other values scale every step alike",
            },
        }
        return [replace(o, **changes.get(o.name, {})) for o in super().adapt_options()]

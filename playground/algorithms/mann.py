"""Memory-augmented neural network (Santoro et al. 2016) with least-recently-used memory access.

The task is presented as a sequence. At step ``t`` the network sees image ``x_t`` together with
the one-hot label of the *previous* image, ``y_{t-1}`` (zeros at the first step), and must output
``y_t``. Learning a new class therefore means binding an image to a label that only arrives one
step later, and storing that binding in an external memory that is wiped for every task: nothing
about the task is put into the weights.

Architecture, per step (``reads`` heads, each with its own key, write vector and gate)::

    z_t      = Conv4(x_t)                                           image features
    h_t, c_t = LSTM([z_t, onehot(y_{t-1}), r_{t-1}], (h_{t-1}, c_{t-1}))      controller
    k_t, beta_t  = tanh / 1 + softplus of a linear map of [h_t, z_t]        read key, key strength
    v_t, alpha_t = tanh / identity of a linear map of [h_t, onehot(y_{t-1})] write vector, write gate
    write    w^w_t = sigmoid(alpha_t) w^r_{t-1} + (1 - sigmoid(alpha_t)) w^lu_{t-1}
             M_t   = (M_{t-1} with the least-used slots zeroed) + w^w_t^T (k_{t-1} + v_t)
    read     w^r_t = softmax(beta_t cos(k_t, M_t))                  content addressing
             r_t   = w^r_t M_t
    usage    w^u_t = gamma w^u_{t-1} + w^r_t + w^w_t                 (summed over heads)
    output   o_t   = W [h_t, r_t]                                   logits over ``max_ways`` labels

Least-recently-used access (LRUA): ``w^lu_{t-1}`` gives head ``i`` the ``i``-th least-used slot
by ``w^u_{t-1}``, and those slots are zeroed before the write, as in the paper (which zeroes the
one least-used slot; with several heads each gets its own fresh slot). The gate chooses between
updating the memory read last and storing into a fresh slot.

Deviations from the paper, and why:

* A Conv-4 encoder turns each image into features; the paper fed raw pixels to the controller.
  The conv encoder learns far faster, and is what the other learners here use.
* Delayed binding. The paper writes the current key ``k_t`` and relies on the controller to
  attach the label, which arrives one step later, to it (e.g. by writing again into the location
  it just read); the paper trains for about 10^5 episodes. Here the write at step ``t``
  stores the *previous* step's read key ``k_{t-1}`` plus a write vector computed from the label
  that has just arrived, into the slot read at ``t-1`` (the paper's "most recently read
  location", i.e. the same class seen before) or a least-used slot. A memory is then an (image
  key, label) pair from the start of training, and the plateau at chance is short (a few hundred
  episodes on the synthetic glyphs; with the paper's write it stayed at chance for the 400-1000
  meta-steps we tried).
* The key strength ``beta >= 1`` (as in the Neural Turing Machine), initialised to about 11, and
  the read keys see the image features directly (and the write vectors the label input): a
  softmax over raw cosine similarities in [-1, 1] across 128 mostly empty slots is nearly uniform,
  so no gradient signal gets through at the start.

Few-shot interface. ``adapt`` runs the support set through the network in a fixed round-robin
order (the first example of every class in class order, then the second, ...), so every class's
examples are spread over the sequence and the result never depends on randomness. Each query is
then ONE further step from the post-support state, with the last support label as its label
input: queries are independent of each other. ``meta_loss`` trains exactly this structure,
batched over the tasks: the query loss plus ``support_loss_weight`` x the loss of the
support-sequence predictions (the classic MANN objective), counted only for images whose class
has appeared earlier in the sequence. A class's first image has no label to recall; in one-shot
training every support image is one, and with that term included the model learned much more
slowly (still at chance after 200 steps for one of two seeds). In meta-training the support
order is a random permutation per task, and (``random_label_slots``) each task's classes are
mapped onto a random subset of the ``max_ways`` label units, so every unit is trained and a model
trained on 5-way tasks can serve any task of up to ``max_ways`` classes. At adapt time class
``c`` uses unit ``c`` and only the first ``n_way`` logits are returned.

`MannPredictor.trace` records the support-sequence loss and accuracy. In a one-shot task every
support image is the first of its class, so that accuracy is at chance level; it measures recall
of classes seen earlier in the sequence only from the second shot on.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from playground.algorithms.base import MetaLearner, Predictor, StepRecord, accuracy, register, support_fit
from playground.data.episodes import TaskBatch
from playground.models import Conv4

QUERY_CHUNK = 4096  # query steps per call when evaluating without gradients
STRENGTH_INIT = 10.0  # initial key strength 1 + softplus(10) = 11: reads start focused enough to carry a signal
GATE_INIT = -3.0  # initial write gate sigmoid(-3) = 0.05: new bindings go to fresh slots at first


class LRUAMemory(nn.Module):
    """External memory with content-based reads and least-recently-used writes (no parameters).

    The memory state is passed in and returned (``memory`` [B, slots, size], ``usage``
    [B, slots]), so one module serves any number of sequences at once.
    """

    def __init__(self, slots: int, size: int, heads: int, usage_decay: float):
        super().__init__()
        if heads > slots:
            raise ValueError(f"{heads} heads need at least as many memory slots, got {slots}")
        self.slots, self.size, self.heads, self.usage_decay = slots, size, heads, usage_decay

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """An empty memory and zero usage."""
        return (
            torch.zeros(batch, self.slots, self.size, device=device, dtype=dtype),
            torch.zeros(batch, self.slots, device=device, dtype=dtype),
        )

    def least_used(self, usage: torch.Tensor) -> torch.Tensor:
        """One-hot weights [B, heads, slots]: head ``i`` gets the ``i``-th least-used slot.

        A stable sort breaks ties by slot index, so the choice is deterministic and does not
        depend on which other sequences share the batch.
        """
        order = torch.sort(usage, dim=-1, stable=True).indices[:, : self.heads]
        return F.one_hot(order, self.slots).to(usage.dtype)

    def write(
        self,
        memory: torch.Tensor,
        usage: torch.Tensor,
        prev_read: torch.Tensor,
        add: torch.Tensor,
        gate: torch.Tensor,
        scale: torch.Tensor | float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """LRUA write; returns the new memory [B, slots, size] and the write weights [B, heads, slots].

        ``usage`` [B, slots] is w^u_{t-1}, ``prev_read`` [B, heads, slots] the previous step's
        read weights w^r_{t-1}, ``add`` [B, heads, size] the vectors to write and ``gate``
        [B, heads] the pre-sigmoid interpolation alpha: 1 writes into the slot read last (update
        that memory, e.g. with the label that has just arrived), 0 into a least-used slot (store
        something new). ``scale`` (broadcast to [B, heads, slots]) multiplies the write weights:
        0 skips the write (and the erasure) of a sequence.
        """
        least = self.least_used(usage) * scale
        g = gate.sigmoid().unsqueeze(-1)
        write_weights = g * prev_read * scale + (1 - g) * least
        # The least-used slots are erased before the write, so a fresh memory does not blend
        # with whatever stale content the slot held.
        keep = 1 - least.sum(1).clamp(max=1)
        memory = memory * keep.unsqueeze(-1) + write_weights.transpose(-1, -2) @ add
        return memory, write_weights

    def read(self, memory: torch.Tensor, key: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
        """Read weights [B, heads, slots]: softmax of strength x cosine similarity of each key to each slot.

        ``memory`` [B, slots, size], ``key`` [B, heads, size], ``strength`` [B, heads].
        """
        sim = F.normalize(key, dim=-1) @ F.normalize(memory, dim=-1).transpose(-1, -2)
        return (strength.unsqueeze(-1) * sim).softmax(-1)

    def update_usage(
        self, usage: torch.Tensor, read_weights: torch.Tensor, write_weights: torch.Tensor
    ) -> torch.Tensor:
        """w^u_t = gamma w^u_{t-1} + sum over heads of (w^r_t + w^w_t)."""
        return self.usage_decay * usage + read_weights.sum(1) + write_weights.sum(1)


@dataclass
class MannState:
    """The recurrent state between steps; every tensor has the batch as its first dimension."""

    h: torch.Tensor  # [B, controller]
    c: torch.Tensor  # [B, controller]
    reads: torch.Tensor  # [B, heads * size], the previous step's read vectors
    keys: torch.Tensor  # [B, heads, size], the previous step's read keys
    read_weights: torch.Tensor  # [B, heads, slots], the previous step's read weights
    memory: torch.Tensor  # [B, slots, size]
    usage: torch.Tensor  # [B, slots]
    prev_label: torch.Tensor  # [B, max_ways], one-hot of the last label seen (zeros at the start)

    def expand(self, n: int) -> MannState:
        """Each sequence repeated n times (views, no copies): [B, ...] -> [B * n, ...], task-major."""

        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.unsqueeze(1).expand(t.shape[0], n, *t.shape[1:]).flatten(0, 1)

        return MannState(*(rep(getattr(self, f.name)) for f in fields(self)))


def occurrence(labels: torch.Tensor) -> torch.Tensor:
    """[..., n] labels -> [..., n]: how many earlier elements have the same label (0 for a class's first)."""
    one_hot = F.one_hot(labels)
    return (one_hot.cumsum(-2) * one_hot).sum(-1) - 1


def round_robin_order(labels: torch.Tensor) -> torch.Tensor:
    """Permutation [..., n] of a support set [..., n]: each class's first example, in class order, then each second...

    Deterministic, and it spreads every class's examples over the whole sequence.
    """
    return (occurrence(labels) * (int(labels.max()) + 1) + labels).argsort(dim=-1, stable=True)


class MannPredictor(Predictor):
    """Holds one task's post-support state; each query is one more step from it."""

    def __init__(self, learner: MANN, state: MannState, n_way: int, trace: list[StepRecord]):
        self.learner, self.state, self.n_way, self.trace = learner, state, n_way, trace

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.state.h.device)
        out, _ = self.learner.query_step(self.state, self.learner.encoder(x).unsqueeze(0))
        return out[0, :, : self.n_way]

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The read vectors [n, heads * size] each query retrieves from the task's memory.

        With the controller state they are what the output layer classifies from: the
        task-specific part of the decision (the encoder features are the same for every task).
        """
        x = x.to(self.state.h.device)
        _, reads = self.learner.query_step(self.state, self.learner.encoder(x).unsqueeze(0))
        return reads[0]


@register
class MANN(MetaLearner):
    """MANN with LRUA memory (see the module docstring).

    Hyperparameters: ``hidden`` (Conv-4 channels = feature size), ``controller_size`` (LSTM
    units), ``memory_slots`` x ``memory_size`` (the memory), ``reads`` (heads; each reads and
    writes), ``usage_decay`` (gamma), ``max_ways`` (label units: the most classes a task may
    have), ``support_loss_weight`` and ``random_label_slots`` (meta-training only).
    """

    not_distributable = (
        "it draws each task's sequence order and label units from the global random generator inside "
        "meta_loss, so a share of the meta-batch gets other random draws than in one process"
    )
    not_exportable = (
        "it classifies by a recurrent controller reading an external memory, and the export does not "
        "rebuild that memory and its controller step"
    )

    name = "mann"
    title = "MANN"
    glyphs_only = "its memory-augmented network takes 1x28x28 glyphs only (a fixed input size)"

    def __init__(
        self,
        *,
        hidden: int = 64,
        controller_size: int = 200,
        memory_slots: int = 128,
        memory_size: int = 40,
        reads: int = 4,
        usage_decay: float = 0.95,
        max_ways: int = 20,
        support_loss_weight: float = 0.5,
        random_label_slots: bool = True,
        **base,
    ):
        super().__init__(**base)
        if max_ways < 2:
            raise ValueError(f"max_ways must be at least 2, got {max_ways}")
        if self.n_way > max_ways:
            raise ValueError(f"n_way={self.n_way} is more than max_ways={max_ways}")
        if not 0.0 <= usage_decay <= 1.0:
            raise ValueError(f"usage_decay must be in [0, 1], got {usage_decay}")
        if support_loss_weight < 0:
            raise ValueError(f"support_loss_weight must be non-negative, got {support_loss_weight}")
        self.hidden, self.controller_size = hidden, controller_size
        self.memory_slots, self.memory_size, self.reads = memory_slots, memory_size, reads
        self.usage_decay, self.max_ways = usage_decay, max_ways
        self.support_loss_weight, self.random_label_slots = support_loss_weight, random_label_slots

        self.encoder = Conv4(hidden=hidden, track_running_stats=True)
        self.memory = LRUAMemory(memory_slots, memory_size, reads, usage_decay)
        read_dim = reads * memory_size
        self.controller = nn.LSTMCell(hidden + max_ways + read_dim, controller_size)
        # Per head, a read key and its strength from the controller output with the image
        # features passed through, and a write vector and write gate from the controller output
        # with the label input passed through: reads are about the current image, writes bind
        # the previous image to its label.
        self.read_params = nn.Linear(controller_size + hidden, reads * (memory_size + 1))
        self.write_params = nn.Linear(controller_size + max_ways, reads * (memory_size + 1))
        self.output = nn.Linear(controller_size + read_dim, max_ways)
        with torch.no_grad():
            self.read_params.bias.view(reads, memory_size + 1)[:, -1] = STRENGTH_INIT
            self.write_params.bias.view(reads, memory_size + 1)[:, -1] = GATE_INIT

    # -- one step of the controller and memory -------------------------------------------------
    def initial_state(self, batch: int) -> MannState:
        p = next(self.parameters())
        memory, usage = self.memory.initial_state(batch, p.device, p.dtype)
        return MannState(
            h=p.new_zeros(batch, self.controller_size),
            c=p.new_zeros(batch, self.controller_size),
            reads=p.new_zeros(batch, self.reads * self.memory_size),
            keys=p.new_zeros(batch, self.reads, self.memory_size),
            read_weights=p.new_zeros(batch, self.reads, self.memory_slots),
            memory=memory,
            usage=usage,
            prev_label=p.new_zeros(batch, self.max_ways),
        )

    def step(
        self, state: MannState, z: torch.Tensor, label: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, MannState]:
        """One step: image features z [B, hidden] with the previous label; returns logits [B, max_ways].

        ``label`` [B, max_ways] is the one-hot label of *this* image: the next step's label
        input (this step's prediction never sees it); None for a query, after which the state
        is not used again.
        """
        h, c = self.controller(torch.cat([z, state.prev_label, state.reads], -1), (state.h, state.c))
        r = self.read_params(torch.cat([h, z], -1)).unflatten(-1, (self.reads, self.memory_size + 1))
        w = self.write_params(torch.cat([h, state.prev_label], -1)).unflatten(-1, (self.reads, self.memory_size + 1))
        key, strength = r[..., :-1].tanh(), 1 + F.softplus(r[..., -1])
        value, gate = w[..., :-1].tanh(), w[..., -1]
        # Write the binding of the previous image (its read key) with the label that has just
        # arrived (in the controller's write vector), to the slot read last or the least used.
        # Nothing to bind at the first step: its write weights are zero.
        has_prev = state.prev_label.sum(-1)[:, None, None]
        memory, write_w = self.memory.write(
            state.memory, state.usage, state.read_weights, state.keys + value, gate, scale=has_prev
        )
        read_w = self.memory.read(memory, key, strength)
        reads = (read_w @ memory).flatten(-2)  # [B, heads * size]
        logits = self.output(torch.cat([h, reads], -1))
        usage = self.memory.update_usage(state.usage, read_w, write_w)
        label = state.prev_label if label is None else label
        return logits, MannState(h, c, reads, key, read_w, memory, usage, label)

    def query_step(self, state: MannState, zq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step for each of n queries per task, all from the task's state: zq [B, n, hidden].

        Returns logits [B, n, max_ways] and read vectors [B, n, heads * size]. The state is
        expanded along the query dimension, so no query ever sees another.
        """
        b, n = zq.shape[:2]
        # Without gradients, bound the memory (a [slots, size] copy per query) by chunking.
        per = n if torch.is_grad_enabled() else max(1, QUERY_CHUNK // b)
        logits, reads = [], []
        for part in zq.split(per, dim=1):
            out, after = self.step(state.expand(part.shape[1]), part.flatten(0, 1))
            logits.append(out.unflatten(0, part.shape[:2]))
            reads.append(after.reads.unflatten(0, part.shape[:2]))
        return torch.cat(logits, 1), torch.cat(reads, 1)

    def run_support(self, zs: torch.Tensor, slots: torch.Tensor) -> tuple[torch.Tensor, MannState]:
        """The whole support sequence: features [B, T, hidden], label units [B, T] in sequence order.

        Returns the logits of every step [B, T, max_ways] and the post-support state.
        """
        b, t = slots.shape
        state = self.initial_state(b)
        one_hot = F.one_hot(slots, self.max_ways).to(zs.dtype)
        logits = []
        for i in range(t):
            out, state = self.step(state, zs[:, i], one_hot[:, i])
            logits.append(out)
        return torch.stack(logits, 1), state

    # -- the MetaLearner interface ---------------------------------------------------------------
    def _check_ways(self, n_way: int) -> None:
        if n_way > self.max_ways:
            raise ValueError(
                f"this mann model has {self.max_ways} label units (max_ways), so it cannot take a task with "
                f"{n_way} classes; train one with a larger max_ways"
            )

    def sequence_order(self, support_y: torch.Tensor, n_way: int, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The order [B, T] in which the support images are presented, and the label unit [B, n_way] of each class.

        Meta-training: a random order per task (robustness to the order) and, with
        ``random_label_slots``, a random unit per class (every unit gets trained). Otherwise the
        deterministic round-robin order and unit c for class c.
        """
        b = support_y.shape[0]
        if train:
            order = torch.rand(support_y.shape, device=support_y.device).argsort(-1)
        else:
            order = round_robin_order(support_y)
        if train and self.random_label_slots:
            units = torch.rand(b, self.max_ways, device=support_y.device).argsort(-1)[:, :n_way]
        else:
            units = torch.arange(n_way, device=support_y.device).expand(b, -1)
        return order, units

    def _support(
        self, zs: torch.Tensor, support_y: torch.Tensor, n_way: int, train: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, MannState]:
        """The support sequence of B tasks: features [B, T, hidden], labels [B, T].

        Presented in `sequence_order`. Returns the support logits [B, T, n_way] and labels [B, T]
        in *sequence* order, the label units [B, n_way] and the post-support state.
        """
        order, units = self.sequence_order(support_y, n_way, train)
        y_seq = support_y.gather(1, order)
        zs = zs.gather(1, order.unsqueeze(-1).expand_as(zs))
        logits, state = self.run_support(zs, units.gather(1, y_seq))
        return self._task_logits(logits, units), y_seq, units, state

    @staticmethod
    def _task_logits(logits: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        """[B, n, max_ways] -> [B, n, n_way]: only the task's label units compete; class c is unit units[c]."""
        return logits.gather(-1, units.unsqueeze(1).expand(-1, logits.shape[1], -1))

    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        b, ns = tasks.support_y.shape
        nq = tasks.query_y.shape[1]
        n_way = int(tasks.support_y.max()) + 1
        self._check_ways(n_way)
        images = torch.cat([tasks.support_x.flatten(0, 1), tasks.query_x.flatten(0, 1)])
        z = self.encoder(images)
        zs, zq = z[: b * ns].view(b, ns, -1), z[b * ns :].view(b, nq, -1)
        logits_s, y_seq, units, state = self._support(zs, tasks.support_y, n_way, train=True)
        logits_q = self._task_logits(self.query_step(state, zq)[0], units)
        loss = F.cross_entropy(logits_q.flatten(0, 1), tasks.query_y.flatten())
        # Support-sequence loss on the images whose class has appeared before in the sequence: a
        # class's first image has no label to recall (the paper's objective includes it; in
        # one-shot training every support image is a first, and that term only slowed learning).
        seen = occurrence(y_seq) > 0
        if self.support_loss_weight > 0 and ns > n_way:  # some class has a second image
            loss = loss + self.support_loss_weight * F.cross_entropy(logits_s[seen], y_seq[seen])
        return loss, accuracy(logits_q.flatten(0, 1), tasks.query_y.flatten())

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> MannPredictor:
        n_way = self.check_support(support_x, support_y)
        self._check_ways(n_way)
        with torch.no_grad():
            support_x, support_y = support_x.to(self.device), support_y.to(self.device)
            zs = self.encoder(support_x).unsqueeze(0)
            logits_s, y_seq, _, state = self._support(zs, support_y.unsqueeze(0), n_way, train=False)
            trace = support_fit(F.cross_entropy(logits_s[0], y_seq[0]), logits_s[0], y_seq[0])
        return MannPredictor(self, state, n_way, trace)

    @torch.no_grad()
    def episode_accuracies(
        self, tasks: TaskBatch, n_steps: int | None = None, inner_lr: float | None = None
    ) -> torch.Tensor:
        tasks = tasks.to(self.device)
        b, ns = tasks.support_y.shape
        nq = tasks.query_y.shape[1]
        n_way = int(tasks.support_y.max()) + 1
        self._check_ways(n_way)
        zs = self.encoder(tasks.support_x.flatten(0, 1)).view(b, ns, -1)
        zq = self.encoder(tasks.query_x.flatten(0, 1)).view(b, nq, -1)
        _, _, units, state = self._support(zs, tasks.support_y, n_way, train=False)
        logits_q = self._task_logits(self.query_step(state, zq)[0], units)
        return (logits_q.argmax(-1) == tasks.query_y).float().mean(-1)

"""Baseline: pretrain-then-adapt (Baseline/Baseline++, Chen et al. 2019; SimpleShot, Wang et al. 2019).

No meta-learning at all: a Conv-4 is trained as an ordinary classifier over *all* the
meta-training classes, then thrown away except for its body. A new task is solved in the
body's feature space:

``head="centroid"`` (SimpleShot's "CL2N")
    every feature is centred by the mean training feature and L2-normalised; a query goes to
    the nearest class centroid (mean of that class's normalised support features).
``head="linear"`` (Chen et al.'s Baseline)
    a logistic-regression head fitted on the normalised support features by
    ``test_inner_steps`` full-batch gradient-descent steps at ``inner_lr`` from zero (every
    class alike), its support loss recorded per step.

The pretraining classifier is a plain linear layer (Baseline, and SimpleShot's recipe):
Baseline++'s cosine classifier (scale 10) did worse in a short CPU run on Omniglot (with Adam
at 1e-3: 58 % against the linear layer's 66 % 5-way 1-shot validation accuracy after 100 steps
of 720 images; not tried with SGD).

Training through the common loop. An ordinary classifier needs global class indices, and
episodes only number their classes 0..N-1, but each episode carries its class names. So the
learner keeps a vocabulary (name -> row of the classifier), which `prepare_training` fills
with every class of the training set before the first step (the training loop calls it),
and `meta_train_step` maps each task's names to rows and does one cross-entropy step on all
support and query images of the batch: ``--train-ways 60 --shots 1 --query 5 --meta-batch 2``
is a class-balanced minibatch of 720 images over 120 classes. The vocabulary is saved with
the weights (``n_classes`` in the config gives the classifier's shape; the names travel as
the module's extra state), so checkpoints reload and resume. A learner used without
`prepare_training` adds the names it meets, growing the classifier (see `_add_classes`).

The centring mean is a running mean of the training images' features (eval mode, as `adapt`
computes them), updated after every training step as batch norm updates its running statistics.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from playground.algorithms.base import (
    AdaptOption,
    MetaLearner,
    Predictor,
    StepRecord,
    StepStats,
    accuracy,
    gradient_step_options,
    one_of,
    register,
    support_fit,
)
from playground.algorithms.protonet import prototypes
from playground.data.episodes import TaskBatch
from playground.data.protocols import ClassDataset
from playground.models.exported import PerImage, batch_independent, frozen_copy, squared_distances

HEADS = ("centroid", "linear")
# Floor of the running mean's update weight: the mean follows the last ~20 steps, as the
# features drift while the body trains (a plain average would be dominated by early features).
MEAN_MOMENTUM = 0.05
SEPARATOR = "\n"  # between class names in the saved vocabulary


class PretrainedPredictor(Predictor):
    """A head on the frozen, centred, L2-normalised features: centroids or a linear layer."""

    def __init__(
        self,
        learner: Pretrained,
        trace: list[StepRecord],
        centroids: torch.Tensor | None = None,
        linear: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        self.learner, self.trace, self.centroids, self.linear = learner, trace, centroids, linear
        self.n_way = centroids.shape[0] if centroids is not None else linear[0].shape[0]

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.learner.normalised_features(x.to(self.learner.device))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embed(x)
        if self.centroids is not None:
            return self.learner.centroid_logits(z, self.centroids)
        weight, bias = self.linear
        return z @ weight.T + bias

    def export_module(self, group: int = 1) -> nn.Module:
        """The body, the centring mean and the head (centroids or linear): each image alone."""
        learner = self.learner
        if self.centroids is not None:
            head = ("centroid", self.centroids, torch.zeros(0))
        else:
            head = ("linear", *self.linear)
        return PerImage(_PretrainedModule(learner.body, learner.feature_mean, learner.scale, *head))


class _PretrainedModule(nn.Module):
    """Images [m, 1, 28, 28] -> logits [m, n_way] on the centred, L2-normalised body features."""

    def __init__(self, body: nn.Module, mean: torch.Tensor, scale: float, head: str, a: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.body, self.head, self.scale = frozen_copy(body), head, float(scale)
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("a", a.detach().clone())
        self.register_buffer("b", b.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.body(x) - self.mean, dim=-1)
        if self.head == "centroid":
            return -self.scale * squared_distances(z, self.a)
        return z @ self.a.T + self.b


@register
class Pretrained(MetaLearner):
    name = "pretrained"
    title = "Pretrained"

    def __init__(
        self,
        *,
        hidden: int = 64,
        head: str = "centroid",
        scale: float = 10.0,
        test_inner_steps: int = 100,
        inner_lr: float = 1.0,
        n_classes: int = 0,
        outer_lr: float = 0.1,
        **base,
    ):
        super().__init__(outer_lr=outer_lr, **base)
        one_of("head", head, HEADS)
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if test_inner_steps < 0:
            raise ValueError(f"test_inner_steps must be >= 0 (got {test_inner_steps})")
        if not 0 < inner_lr < float("inf"):
            raise ValueError(f"inner_lr must be a positive finite number (got {inner_lr})")
        if n_classes < 0:
            raise ValueError(f"n_classes must be >= 0 (got {n_classes})")
        self.hidden, self.head, self.scale = hidden, head, scale
        self.test_inner_steps, self.inner_lr, self.n_classes = test_inner_steps, inner_lr, n_classes
        # Running statistics: a feature (and so a prediction) never depends on its batch-mates.
        self.body = self.make_backbone(hidden, track_running_stats=True)
        dim = self.body.embedding_dim
        # Zero-initialised: the classes start alike, and rows added later start the same way.
        self.classifier_weight = nn.Parameter(torch.zeros(n_classes, dim))
        self.classifier_bias = nn.Parameter(torch.zeros(n_classes))
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_mean_updates", torch.zeros((), dtype=torch.long))
        self.class_names: list[str] = []  # row i of the classifier is class_names[i]
        self._row: dict[str, int] = {}

    def export_problem(self) -> str:
        if not batch_independent(self.body):
            return "its body normalises with batch statistics, so an image's features depend on its batch"
        return ""

    # -- the class vocabulary ------------------------------------------------------------------
    def prepare_training(self, train_set: ClassDataset) -> None:
        """Give every training class a classifier row, so the optimizer sees the final layer."""
        self._add_classes(train_set.names)

    def _add_classes(self, names: Iterable[str]) -> None:
        """Give unknown class names the next free rows, growing the classifier if it is full.

        Growing keeps the learned rows and the optimizer's state for them (new rows start with
        zero moments), so training without `prepare_training` still works; with it, the layer
        has its final size before the first step and never grows.
        """
        new = [n for n in dict.fromkeys(names) if n not in self._row]
        if not new:
            return
        for name in new:
            if SEPARATOR in name:
                raise ValueError(f"class name {name!r} contains a line break")
            self._row[name] = len(self.class_names)
            self.class_names.append(name)
        extra = len(self.class_names) - self.n_classes
        if extra > 0:
            self._grow(extra)

    def _grow(self, extra: int) -> None:
        old = (self.classifier_weight, self.classifier_bias)
        grown = tuple(nn.Parameter(torch.cat([p.detach(), p.new_zeros(extra, *p.shape[1:])])) for p in old)
        self.classifier_weight, self.classifier_bias = grown
        self.n_classes += extra
        if self._optimizer is not None:
            # Swap the new tensors into the existing optimizer (the LR scheduler holds it), padding
            # per-parameter state such as Adam's moments with zeros for the new rows.
            swap = {id(before): after for before, after in zip(old, grown)}
            for group in self._optimizer.param_groups:
                group["params"] = [swap.get(id(p), p) for p in group["params"]]
            for before, after in zip(old, grown):
                state = self._optimizer.state.pop(before, None)
                if state is not None:
                    self._optimizer.state[after] = {
                        k: torch.cat([v, v.new_zeros(extra, *v.shape[1:])])
                        if torch.is_tensor(v) and v.shape == before.shape
                        else v
                        for k, v in state.items()
                    }

    def get_extra_state(self) -> torch.Tensor:
        """The vocabulary as UTF-8 bytes in a tensor, so checkpoints stay plain tensors."""
        data = SEPARATOR.join(self.class_names).encode("utf-8")
        return torch.tensor(list(data), dtype=torch.uint8)

    def set_extra_state(self, state: torch.Tensor) -> None:
        text = bytes(state.cpu().tolist()).decode("utf-8")
        names = text.split(SEPARATOR) if text else []
        if len(names) > self.n_classes:
            raise RuntimeError(f"the vocabulary has {len(names)} classes but the classifier only {self.n_classes}")
        self.class_names = names
        self._row = {n: i for i, n in enumerate(names)}

    def class_indices(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Global class indices (classifier rows) of the support and query labels [B, N*K], [B, N*Q]."""
        if not tasks.class_names:
            raise ValueError("pretrained trains an ordinary classifier and needs each task's class_names")
        self._add_classes(n for names in tasks.class_names for n in names)
        rows = torch.tensor(
            [[self._row[n] for n in names] for names in tasks.class_names], device=tasks.support_y.device
        )
        return rows.gather(1, tasks.support_y), rows.gather(1, tasks.query_y)

    # -- pretraining ---------------------------------------------------------------------------------
    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """SGD with Nesterov momentum at ``outer_lr`` (default 0.1), the usual recipe for classifiers.

        Adam at 1e-3, the meta-learners' default, learns this many-class classifier far more
        slowly: each class is in only a few percent of the batches, and Adam's per-weight
        normalisation shrinks the rare, large updates of its row. On Omniglot (lake, 3224
        training classes, 720 images per step) SGD reached 78 % 5-way 1-shot validation accuracy
        after 100 steps where Adam had 66 %.
        """
        if self._optimizer is None:
            self._optimizer = torch.optim.SGD(self.parameters(), lr=self.outer_lr, momentum=0.9, nesterov=True)
        return self._optimizer

    def meta_train_step(self, tasks: TaskBatch, grad_hook=None) -> StepStats:
        """One ordinary classification step on every image of the batch (accuracy: over all classes)."""
        self._add_classes(n for names in tasks.class_names for n in names)  # before the optimizer step
        stats = super().meta_train_step(tasks, grad_hook)
        self._update_mean(tasks.support_x.flatten(0, 1).to(self.device))
        return stats

    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        ys, yq = self.class_indices(tasks)
        images = torch.cat([tasks.support_x.flatten(0, 1), tasks.query_x.flatten(0, 1)])
        labels = torch.cat([ys.flatten(), yq.flatten()])
        z = self.body(images)
        logits = z @ self.classifier_weight.T + self.classifier_bias
        return F.cross_entropy(logits, labels), accuracy(logits, labels)

    @torch.no_grad()
    def _update_mean(self, images: torch.Tensor) -> None:
        """Fold the mean feature of ``images`` into the running mean.

        The features are computed in eval mode with the weights just updated, i.e. exactly as
        `adapt` will compute them (batch norm with running statistics): the training forward's
        features (batch statistics, weights before the step) are measurably off-centre while the
        body still changes fast. The support images alone suffice (a forward pass of a sixth of
        the batch for ``--shots 1 --query 5``, about 5 % of a step): they are class-balanced too.
        """
        # 1/t at first (an exact average of the first steps), then an exponential moving average.
        momentum = max(1.0 / float(self.feature_mean_updates + 1), MEAN_MOMENTUM)
        self.feature_mean.lerp_(self.body(images).mean(0), momentum)
        self.feature_mean_updates += 1

    # -- adaptation ------------------------------------------------------------------------------------
    @torch.no_grad()
    def normalised_features(self, x: torch.Tensor) -> torch.Tensor:
        """Body features, centred by the mean training feature and L2-normalised (SimpleShot's CL2N)."""
        return F.normalize(self.body(x) - self.feature_mean, dim=-1)

    def centroid_logits(self, z: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
        """``scale`` times the negative squared Euclidean distance to each centroid."""
        return -self.scale * torch.cdist(z, centroids).pow(2)

    def fit_linear(
        self, zs: torch.Tensor, ys: torch.Tensor, n_way: int, steps: int, lr: float
    ) -> tuple[torch.Tensor, torch.Tensor, list[StepRecord]]:
        """Logistic regression on support features [B, n, d] by full-batch gradient descent.

        Tasks are independent (the loss is a sum of per-task means), so a batch of tasks fits
        exactly as each would alone. Returns weights [B, N, d], biases [B, N] and the trace of
        the first task.
        """
        weight = zs.new_zeros(zs.shape[0], n_way, zs.shape[-1], requires_grad=True)
        bias = zs.new_zeros(zs.shape[0], n_way, requires_grad=True)
        trace: list[StepRecord] = []
        with torch.enable_grad():
            for step in range(steps + 1):
                logits = zs @ weight.transpose(1, 2) + bias.unsqueeze(1)
                losses = F.cross_entropy(logits.transpose(1, 2), ys, reduction="none").mean(1)
                trace.append(StepRecord(step, float(losses[0].detach()), float(accuracy(logits[0], ys[0]))))
                if step == steps:
                    break
                gw, gb = torch.autograd.grad(losses.sum(), (weight, bias))
                weight, bias = weight - lr * gw, bias - lr * gb
        return weight.detach(), bias.detach(), trace

    def adapt_options(self) -> list[AdaptOption]:
        """The linear head's gradient steps and learning rate; the centroid head has no settings."""
        if self.head != "linear":
            return []
        return gradient_step_options(
            self.test_inner_steps,
            max(200, 2 * self.test_inner_steps),
            self.inner_lr,
            ("head steps", "gradient steps of the logistic-regression head on the support features"),
            ("head learning rate", "step size of those steps"),
        )

    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> PretrainedPredictor:
        """A head on the support features; ``n_steps``/``inner_lr`` apply to the linear head only."""
        n_way = self.check_support(support_x, support_y)
        steps, lr = self.inner_settings(n_steps, inner_lr)
        support_x, support_y = support_x.to(self.device), support_y.to(self.device)
        zs = self.normalised_features(support_x)
        if self.head == "centroid":
            centroids = prototypes(zs, support_y, n_way)
            logits = self.centroid_logits(zs, centroids)
            trace = support_fit(F.cross_entropy(logits, support_y), logits, support_y)
            return PretrainedPredictor(self, trace, centroids=centroids)
        weight, bias, trace = self.fit_linear(zs[None], support_y[None], n_way, steps, lr)
        return PretrainedPredictor(self, trace, linear=(weight[0], bias[0]))

    @torch.no_grad()
    def episode_accuracies(
        self, tasks: TaskBatch, n_steps: int | None = None, inner_lr: float | None = None
    ) -> torch.Tensor:
        tasks = tasks.to(self.device)
        b, ns = tasks.support_y.shape
        nq = tasks.query_y.shape[1]
        n_way = int(tasks.support_y.max()) + 1
        zs = self.normalised_features(tasks.support_x.flatten(0, 1)).view(b, ns, -1)
        zq = self.normalised_features(tasks.query_x.flatten(0, 1)).view(b, nq, -1)
        if self.head == "centroid":
            logits = self.centroid_logits(zq, prototypes(zs, tasks.support_y, n_way))
        else:
            steps, lr = self.inner_settings(n_steps, inner_lr)
            weight, bias, _ = self.fit_linear(zs, tasks.support_y, n_way, steps, lr)
            logits = zq @ weight.transpose(1, 2) + bias.unsqueeze(1)
        return (logits.argmax(-1) == tasks.query_y).float().mean(-1)

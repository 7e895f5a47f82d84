"""The one interface every algorithm implements, and what `adapt` returns."""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from playground.algorithms.test_time import TestTimeSettings
from playground.data.episodes import TaskBatch
from playground.data.protocols import ClassDataset
from playground.models.resnet12 import STANDARD_WIDTHS

BACKBONES = ("conv4", "resnet12")  # what `MetaLearner.make_backbone` builds


@dataclass
class StepRecord:
    """Support-set loss and accuracy after ``step`` inner steps (gradient-based learners)."""

    step: int
    loss: float
    accuracy: float


def support_fit(loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> list[StepRecord]:
    """The trace of a learner without an inner loop: its loss and accuracy on the support set."""
    return [StepRecord(0, float(loss), float((logits.argmax(-1) == y).float().mean()))]


@dataclass
class DecisionMatrix:
    """One view of how a predictor decides: a value for each (image, class) or (image, support image)."""

    title: str
    values: torch.Tensor  # [n_images, n_columns]
    columns: str  # "class" or "support": what the columns are
    unit: str  # what a value is, e.g. "probability", "squared distance"


class NotExportable(ValueError):
    """A model whose adapted form has no export (`Predictor.export_module`); the message says why."""


class Predictor(ABC):
    """What `MetaLearner.adapt` returns: a classifier for one task, fixed after adaptation."""

    n_way: int
    trace: list[StepRecord]

    @abstractmethod
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores [n, n_way] for images [n, C, H, W] (the learner's `image_shape`)."""

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).softmax(-1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).argmax(-1)

    def embed(self, x: torch.Tensor) -> torch.Tensor | None:
        """The embedding the decision is made in, where the algorithm has one."""
        return None

    def prototypes_for(self, x: torch.Tensor) -> torch.Tensor | None:
        """The class points [n_way, d] in `embed`'s space that the images x are compared with,
        where the algorithm has them (ProtoNet's prototypes); None otherwise."""
        return None

    def decisions(self, x: torch.Tensor) -> list[DecisionMatrix]:
        """What the decision on images x is made from: class probabilities for every predictor,
        plus whatever the algorithm adds (distances to prototypes, attention over the support)."""
        with torch.no_grad():
            proba = self.predict_proba(x)
        return [DecisionMatrix("class probabilities", proba, "class", "probability")]

    def export_module(self, group: int = 1) -> nn.Module:
        """A plain torch module with this task's adapted tensors baked in (`playground.interactive.export`):
        image groups [n, group, 1, 28, 28] -> logits [n, group, n_way], each group scored as one call of
        `logits` on it."""
        raise NotExportable(f"{type(self).__name__} does not say how to export it (Predictor.export_module)")


@dataclass(frozen=True)
class AdaptOption:
    """A test-time setting a person may change before `adapt` (a keyword of `adapt`), with its range."""

    name: str  # the keyword of `adapt`: "n_steps" or "inner_lr"
    label: str
    default: float
    low: float
    high: float
    integer: bool = False
    help: str = ""

    def check(self, value: float) -> float:
        """``value`` if it lies in the allowed range; otherwise a ValueError that names the range."""
        if not (self.low <= value <= self.high):
            raise ValueError(f"{self.label} must be between {self.low:g} and {self.high:g} (got {value:g})")
        return int(value) if self.integer else float(value)


def gradient_step_options(
    steps: int, most: int, lr: float, steps_text: tuple[str, str], lr_text: tuple[str, str]
) -> list[AdaptOption]:
    """The settings of a learner that adapts by gradient steps: how many (0 to ``most``) and their size.

    The step size ranges from a hundredth to ten times ``lr``; each text is (label, help)."""
    lr = float(lr)
    return [
        AdaptOption("n_steps", steps_text[0], steps, 0, most, integer=True, help=steps_text[1]),
        AdaptOption("inner_lr", lr_text[0], lr, lr / 100, lr * 10, help=lr_text[1]),
    ]


def one_of(name: str, value: Any, choices: tuple) -> Any:
    """``value`` if it is one of ``choices``; otherwise a ValueError that names them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


@dataclass
class StepStats:
    loss: float
    accuracy: float


class MetaLearner(nn.Module, ABC):
    """Base of every algorithm: meta-train on batches of tasks, adapt to a new task.

    Subclasses set ``name``, take their hyperparameters as keyword arguments (kept by
    `config()` for checkpoints) and implement `meta_loss` and `adapt`. The learner is in
    eval mode except inside `meta_train_step`, so `adapt` on a shared instance never
    updates batch-norm statistics.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # the short name people know it by, for the app: "ProtoNet"
    # The settings its card chose per task size; `load_learner` sets them, a new learner has none.
    test_time: TestTimeSettings = TestTimeSettings()
    # Why a share of a meta-batch would not reproduce one process (torchrun refuses it); "" when it would.
    not_distributable: ClassVar[str] = ""
    # Why `playground.training.train` cannot meta-train it (it is assembled otherwise); "" when it can.
    not_trainable: ClassVar[str] = ""
    # Whether the app's live page may meta-train it: a small network whose iterations take well under a second
    # on a CPU, so that a minute of training shows it learning (`playground.training.live`).
    trains_live: ClassVar[bool] = False
    # Why its adapted predictor cannot be exported to ONNX (`playground.interactive.export`); "" when it can.
    not_exportable: ClassVar[str] = "its algorithm does not say how to export an adapted model"
    # Why it takes only 1x28x28 glyphs (a network sized for them); "" when its network is `make_backbone`'s.
    glyphs_only: ClassVar[str] = ""
    # The backbones `make_backbone` builds for it (those whose forward pass it can run).
    backbones: ClassVar[tuple[str, ...]] = ("conv4",)

    def __init__(
        self,
        *,
        n_way: int = 5,
        outer_lr: float = 1e-3,
        in_channels: int = 1,
        image_size: int = 28,
        backbone: str = "conv4",
        **unused: Any,
    ):
        super().__init__()
        if unused:
            raise TypeError(f"{type(self).__name__} got unknown options: {', '.join(sorted(unused))}")
        if (in_channels, image_size) != (1, 28) and self.glyphs_only:
            raise ValueError(
                f"{self.name} cannot run on {in_channels}x{image_size}x{image_size} images: {self.glyphs_only}"
            )
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)} (got {backbone!r})")
        if backbone not in self.backbones:
            raise ValueError(f"{self.name} runs on {', '.join(self.backbones)} only, not {backbone}")
        self.n_way = n_way
        self.outer_lr = outer_lr
        self.in_channels, self.image_size, self.backbone = in_channels, image_size, backbone
        self._optimizer: torch.optim.Optimizer | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """[C, H, W] of the images it takes: (1, 28, 28) for glyphs, (3, 84, 84) for mini-ImageNet."""
        return (self.in_channels, self.image_size, self.image_size)

    def make_backbone(self, hidden: int, track_running_stats: bool) -> nn.Module:
        """The learner's embedding network for its images: Conv-4 with ``hidden`` filters, or ResNet-12
        whose widths are the standard 64-160-320-640 scaled by ``hidden / 64``."""
        from playground.models import Conv4, ResNet12

        if self.backbone == "resnet12":
            widths = tuple(max(1, round(w * hidden / 64)) for w in STANDARD_WIDTHS)
            return ResNet12(self.in_channels, widths, track_running_stats=track_running_stats)
        return Conv4(
            in_channels=self.in_channels,
            hidden=hidden,
            image_size=self.image_size,
            track_running_stats=track_running_stats,
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Every way in to adaptation fills the settings its caller left unset from the model's card
        # (`test_time`), here in one place: no algorithm and no caller has to remember to.
        for name, wrap in _CARD_DEFAULTS.items():
            if name in vars(cls):
                setattr(cls, name, wrap(vars(cls)[name]))

    def settings_for(
        self, n_way: int, k_shot: int, n_steps: int | None = None, inner_lr: float | None = None
    ) -> dict[str, float]:
        """The settings `adapt` uses on an ``n_way``-way ``k_shot``-shot task: those given, the others from the
        card's figure nearest that size (`test_time`); a setting in neither is left out (the learner's own)."""
        given = {"n_steps": n_steps, "inner_lr": inner_lr}
        card = self.test_time.nearest(n_way, k_shot) if None in given.values() else {}
        chosen = {k: card.get(k) if v is None else v for k, v in given.items()}
        return {k: v for k, v in chosen.items() if v is not None and self.adapts_with(k)}

    def unset_from_card(
        self, support_y: torch.Tensor, n_steps: int | None, inner_lr: float | None
    ) -> tuple[int | None, float | None]:
        """``n_steps`` and ``inner_lr`` for this support set (`settings_for`), None where neither sets them."""
        if not self.test_time or (n_steps is not None and inner_lr is not None) or support_y.numel() == 0:
            return n_steps, inner_lr
        n_way = int(support_y.max()) + 1
        settings = self.settings_for(n_way, round(support_y.numel() / n_way), n_steps, inner_lr)
        return settings.get("n_steps", n_steps), settings.get("inner_lr", inner_lr)

    def export_problem(self) -> str:
        """Why this learner's adapted predictor cannot be exported (`not_exportable`); "" when it can."""
        return self.not_exportable

    # -- configuration -------------------------------------------------------------
    @classmethod
    def hyperparameters(cls) -> dict[str, Any]:
        """Every keyword the learner's constructors accept, with its default."""
        out: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass in (nn.Module, ABC, object) or "__init__" not in vars(klass):
                continue
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind is p.KEYWORD_ONLY and p.name != "model":
                    out[p.name] = p.default
        return out

    def config(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.hyperparameters()}

    @property
    def device(self) -> torch.device:
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    # -- meta-training ---------------------------------------------------------------
    @property
    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            # A baseline with nothing to learn gets an optimizer over an empty placeholder, so the
            # training loop (schedule, checkpoints) needs no special case for it.
            params = list(self.parameters()) or [torch.zeros(0, requires_grad=True)]
            self._optimizer = torch.optim.Adam(params, lr=self.outer_lr)
        return self._optimizer

    @abstractmethod
    def meta_loss(self, tasks: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean query loss (differentiable w.r.t. the meta-parameters) and query accuracy."""

    def prepare_training(self, train_set: ClassDataset) -> None:
        """Hook: called once by `playground.training.train` on a fresh learner, before its optimizer
        is made and before the first `meta_train_step`, with the whole meta-training set.

        For learners that must see the training set up front, e.g. to size a classifier over all
        its classes. Not called when a run resumes, so whatever it sets up must be restored from
        the checkpoint (config and state dict). The default does nothing.
        """

    def meta_train_step(self, tasks: TaskBatch, grad_hook=None) -> StepStats:
        """One outer update on a batch of tasks. ``grad_hook`` runs between backward and step."""
        self.train()
        try:
            self.optimizer.zero_grad(set_to_none=True)
            loss, acc = self.meta_loss(tasks.to(self.device))
            loss.backward()
            if grad_hook is not None:
                grad_hook(self)
            self.optimizer.step()
        finally:
            self.eval()
        return StepStats(float(loss.detach()), float(acc))

    # -- adaptation --------------------------------------------------------------------
    @abstractmethod
    def adapt(
        self,
        support_x: torch.Tensor,
        support_y: torch.Tensor,
        n_steps: int | None = None,
        inner_lr: float | None = None,
    ) -> Predictor:
        """A predictor for the task given by the support set; never changes the meta-weights.

        ``n_steps`` and ``inner_lr`` set the gradient-based learners' test-time inner loop; left
        unset, they are those of the model's card for this task's size (`test_time`), else the
        learner's own. Learners without an inner loop ignore them.
        """

    def adapt_steps(
        self, support_x: torch.Tensor, support_y: torch.Tensor, max_steps: int, inner_lr: float | None = None
    ) -> list[Predictor]:
        """The predictors after 0, 1, ..., ``max_steps`` inner steps (learners with an ``n_steps`` option).

        This default adapts afresh for each count; a learner whose inner loop can hand out its
        weights after every step overrides it to run the loop once.
        """
        kwargs = {} if inner_lr is None else {"inner_lr": inner_lr}
        return [self.adapt(support_x, support_y, n_steps=k, **kwargs) for k in range(max_steps + 1)]

    def adapt_options(self) -> list[AdaptOption]:
        """The test-time settings `adapt` accepts for this learner (none for learners without an inner loop)."""
        return []

    def adapts_with(self, option: str) -> bool:
        """Whether `adapt` takes the setting ``option`` (``n_steps``, ``inner_lr``): one of `adapt_options`."""
        return any(o.name == option for o in self.adapt_options())

    def episode_work(self, n_way: int, k_shot: int, n_query: int, n_steps: int | None = None) -> int:
        """Image passes one episode costs: each support and query image through the network once, plus, for
        a learner with inner steps (``n_steps``, else its own), a forward and a backward pass over the support
        per step. What caps the work one click of the app may start (`playground.evaluation.compare.episode_work`).

        Learners that step only their head (ANIL) are counted as if they stepped the whole network: an
        overestimate, on the safe side. A learner whose cost this misses declares its own.
        """
        steps = 0
        for option in self.adapt_options():
            if option.name == "n_steps":
                steps = int(option.default if n_steps is None else n_steps)
        return n_way * (k_shot * (1 + 2 * steps) + n_query)

    def inner_settings(self, n_steps: int | None, inner_lr: float | None) -> tuple[int, float]:
        """`adapt`'s inner steps and learning rate (the learner's own where not given), checked."""
        steps = self.test_inner_steps if n_steps is None else n_steps
        lr = self.inner_lr if inner_lr is None else inner_lr
        if steps < 0:
            raise ValueError(f"n_steps must be >= 0 (got {steps})")
        if not 0 < lr < float("inf"):
            raise ValueError(f"inner_lr must be a positive finite number (got {lr})")
        return steps, lr

    def check_support(self, support_x: torch.Tensor, support_y: torch.Tensor) -> int:
        """Validate a support set; returns its number of classes."""
        shape = getattr(self, "image_shape", (1, 28, 28))
        if support_x.ndim != 4 or tuple(support_x.shape[1:]) != shape:
            raise ValueError(f"support images must be [n, {', '.join(map(str, shape))}], got {list(support_x.shape)}")
        if support_y.ndim != 1 or support_y.shape[0] != support_x.shape[0]:
            raise ValueError("support labels must be one integer per support image")
        n_way = int(support_y.max()) + 1
        present = torch.bincount(support_y, minlength=n_way)
        if (present == 0).any():
            raise ValueError(
                f"labels must cover 0..{n_way - 1}; missing {torch.nonzero(present == 0).flatten().tolist()}"
            )
        if n_way < 2:
            raise ValueError("a task needs at least 2 classes")
        if self.training:
            raise RuntimeError("call .eval() before adapt(): in train mode batch norm would update its statistics")
        return n_way

    def episode_accuracies(
        self, tasks: TaskBatch, n_steps: int | None = None, inner_lr: float | None = None
    ) -> torch.Tensor:
        """Query accuracy of each task in the batch (override to batch it); ``n_steps``, ``inner_lr`` as in `adapt`."""
        accs = []
        for i in range(len(tasks)):
            t = tasks[i]
            pred = self.adapt(t.support_x, t.support_y, n_steps=n_steps, inner_lr=inner_lr)
            with torch.no_grad():
                accs.append((pred.predict(t.query_x) == t.query_y).float().mean())
        return torch.stack(accs)


def _adapt_with_card(adapt):
    @functools.wraps(adapt)
    def wrapper(self, support_x, support_y, n_steps=None, inner_lr=None):
        return adapt(self, support_x, support_y, *self.unset_from_card(support_y, n_steps, inner_lr))

    return wrapper


def _steps_with_card(adapt_steps):
    @functools.wraps(adapt_steps)
    def wrapper(self, support_x, support_y, max_steps, inner_lr=None):
        return adapt_steps(self, support_x, support_y, max_steps, self.unset_from_card(support_y, 0, inner_lr)[1])

    return wrapper


def _episodes_with_card(episode_accuracies):
    @functools.wraps(episode_accuracies)
    def wrapper(self, tasks, n_steps=None, inner_lr=None):
        first = tasks.support_y[0] if len(tasks) else tasks.support_y.new_zeros(0)
        return episode_accuracies(self, tasks, *self.unset_from_card(first, n_steps, inner_lr))

    return wrapper


_CARD_DEFAULTS = {
    "adapt": _adapt_with_card,
    "adapt_steps": _steps_with_card,
    "episode_accuracies": _episodes_with_card,
}


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == y).float().mean()


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


@dataclass
class _Registry:
    algorithms: dict[str, type[MetaLearner]] = field(default_factory=dict)


REGISTRY = _Registry()


def register(cls: type[MetaLearner]) -> type[MetaLearner]:
    """Class decorator: make an algorithm available by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name")
    if cls.name in REGISTRY.algorithms and REGISTRY.algorithms[cls.name] is not cls:
        raise ValueError(f"algorithm {cls.name!r} is registered twice")
    REGISTRY.algorithms[cls.name] = cls
    return cls

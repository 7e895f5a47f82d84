"""Few-shot tasks (episodes) and a seeded sampler that batches them into stacked tensors."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from playground.data.protocols import ClassDataset


@dataclass
class Task:
    """One N-way K-shot task. Glyphs are float [n, 1, 28, 28] in [0, 1], ink = 1; colour images
    [n, 3, H, W], normalised with their dataset's mean and std."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    class_names: list[str] = field(default_factory=list)

    @property
    def n_way(self) -> int:
        return int(self.support_y.max().item()) + 1

    def to(self, device: torch.device | str) -> Task:
        return Task(
            self.support_x.to(device),
            self.support_y.to(device),
            self.query_x.to(device),
            self.query_y.to(device),
            self.class_names,
        )


@dataclass
class TaskBatch:
    """B tasks of the same shape stacked along a leading dimension."""

    support_x: torch.Tensor  # [B, N*K, 1, 28, 28]
    support_y: torch.Tensor  # [B, N*K]
    query_x: torch.Tensor  # [B, N*Q, 1, 28, 28]
    query_y: torch.Tensor  # [B, N*Q]
    class_names: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return self.support_x.shape[0]

    def __getitem__(self, i: int) -> Task:
        names = self.class_names[i] if self.class_names else []
        return Task(self.support_x[i], self.support_y[i], self.query_x[i], self.query_y[i], names)

    def to(self, device: torch.device | str) -> TaskBatch:
        return TaskBatch(
            self.support_x.to(device),
            self.support_y.to(device),
            self.query_x.to(device),
            self.query_y.to(device),
            self.class_names,
        )

    def split(self, parts: int, index: int) -> TaskBatch:
        """The index-th of ``parts`` contiguous shares of the tasks (for data parallelism)."""
        chunk = torch.arange(len(self)).tensor_split(parts)[index]
        return TaskBatch(
            self.support_x[chunk],
            self.support_y[chunk],
            self.query_x[chunk],
            self.query_y[chunk],
            [self.class_names[i] for i in chunk.tolist()] if self.class_names else [],
        )


def alphabet_of(class_name: str) -> str:
    """The alphabet of an Omniglot class name ("Greek/character03 rot90" -> "Greek rot90": a rotated
    alphabet counts as an alphabet of its own); a name without one is a group by itself."""
    alphabet, _, rest = class_name.partition("/")
    _, _, rotation = rest.partition(" ")
    return f"{alphabet} {rotation}".strip() if rest else class_name


def normalize(x: torch.Tensor, normalization: tuple[tuple[float, ...], tuple[float, ...]]) -> torch.Tensor:
    """[0, 1] images [..., C, H, W] -> (x - mean) / std per channel."""
    mean, std = (torch.tensor(v, dtype=x.dtype, device=x.device).view(-1, 1, 1) for v in normalization)
    return (x - mean) / std


def denormalize(x: torch.Tensor, normalization: tuple[tuple[float, ...], tuple[float, ...]]) -> torch.Tensor:
    """The inverse of `normalize`: back to [0, 1] values."""
    mean, std = (torch.tensor(v, dtype=x.dtype, device=x.device).view(-1, 1, 1) for v in normalization)
    return x * std + mean


def stack_tasks(tasks: list[Task]) -> TaskBatch:
    return TaskBatch(
        torch.stack([t.support_x for t in tasks]),
        torch.stack([t.support_y for t in tasks]),
        torch.stack([t.query_x for t in tasks]),
        torch.stack([t.query_y for t in tasks]),
        [t.class_names for t in tasks],
    )


class TaskSampler:
    """Seeded N-way K-shot sampler: the same seed gives the same episodes, on any device.

    Indices come from a CPU generator, so the episodes do not depend on where the images
    live; only the gather runs on the dataset's device.
    """

    def __init__(
        self, dataset: ClassDataset, n_way: int, k_shot: int, n_query: int, seed: int = 0, within_alphabet: bool = False
    ):
        if n_way < 2:
            raise ValueError(f"n_way must be at least 2 (got {n_way})")
        if k_shot < 1:
            raise ValueError(f"k_shot must be at least 1 (got {k_shot})")
        if n_query < 1:
            raise ValueError(f"n_query must be at least 1 (got {n_query})")
        if n_way > dataset.num_classes:
            raise ValueError(f"n_way={n_way} is more than the {dataset.num_classes} classes available")
        if k_shot + n_query > dataset.drawings_per_class:
            raise ValueError(
                f"k_shot + n_query = {k_shot + n_query} exceeds the {dataset.drawings_per_class} drawings per class"
            )
        self.dataset = dataset
        self.n_way, self.k_shot, self.n_query = n_way, k_shot, n_query
        self.generator = torch.Generator().manual_seed(seed)
        self.alphabets: list[torch.Tensor] | None = None
        if within_alphabet:
            groups: dict[str, list[int]] = {}
            for c, name in enumerate(dataset.names):
                groups.setdefault(alphabet_of(name), []).append(c)
            self.alphabets = [torch.tensor(g) for g in groups.values() if len(g) >= n_way]
            if not self.alphabets:
                raise ValueError(
                    f"within-alphabet episodes of {n_way} ways need an alphabet with at least {n_way} characters; "
                    f"the largest has {max(len(g) for g in groups.values())}"
                )
            # An alphabet is drawn in proportion to its characters, so every character is as likely as before.
            self.alphabet_weights = torch.tensor([len(g) for g in self.alphabets], dtype=torch.float)

    def state_dict(self) -> dict:
        return {"rng": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["rng"])

    def sample_batch(self, batch_size: int) -> TaskBatch:
        n, k, q = self.n_way, self.k_shot, self.n_query
        g = self.generator
        # Task by task, so the episode stream does not depend on how it is batched.
        classes, draws = [], []
        for _ in range(batch_size):
            if self.alphabets is None:
                classes.append(torch.randperm(self.dataset.num_classes, generator=g)[:n])
            else:
                group = self.alphabets[int(torch.multinomial(self.alphabet_weights, 1, generator=g))]
                classes.append(group[torch.randperm(len(group), generator=g)[:n]])
            draws.append(torch.argsort(torch.rand(n, self.dataset.drawings_per_class, generator=g), dim=-1)[:, : k + q])
        classes, draws = torch.stack(classes), torch.stack(draws)
        device = self.dataset.images.device
        imgs = self._gather(classes, draws)  # [B, N, K+Q, (3,) H, W]
        imgs = imgs.float().div_(255.0)
        if imgs.dim() == 5:
            imgs = imgs.unsqueeze(3)  # [B, N, K+Q, 1, 28, 28]
        shape = imgs.shape[3:]
        if self.dataset.normalization is not None:
            imgs = normalize(imgs, self.dataset.normalization)
        labels = torch.arange(n, device=device)
        support_x = imgs[:, :, :k].reshape(batch_size, n * k, *shape)
        query_x = imgs[:, :, k:].reshape(batch_size, n * q, *shape)
        support_y = labels.repeat_interleave(k).expand(batch_size, -1).contiguous()
        query_y = labels.repeat_interleave(q).expand(batch_size, -1).contiguous()
        names = [[self.dataset.names[c] for c in row.tolist()] for row in classes]
        return TaskBatch(support_x, support_y, query_x, query_y, names)

    def _gather(self, classes: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """The uint8 images of drawings ``draws`` [B, N, K+Q] of classes ``classes`` [B, N]."""
        device = self.dataset.images.device
        return self.dataset.images[classes.to(device)[..., None], draws.to(device)]

    def sample(self) -> Task:
        return self.sample_batch(1)[0]

    def __iter__(self):
        while True:
            yield self.sample()


class StyleTaskSampler(TaskSampler):
    """A `TaskSampler` whose every image is, with probability ``p``, one of its drawing's shifted
    variants (``variants[c, d, v]``, e.g. `playground.data.style_shift.style_variants`) instead of the
    drawing itself. The choices come from a generator of their own, so the episodes (classes and
    drawings) are the same as without it; support and query images are chosen independently."""

    def __init__(self, dataset: ClassDataset, variants: torch.Tensor, p: float, *args, seed: int = 0, **kwargs):
        super().__init__(dataset, *args, seed=seed, **kwargs)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"the style probability must be between 0 and 1 (got {p})")
        if variants.shape[:2] != dataset.images.shape[:2] or variants.shape[3:] != dataset.images.shape[2:]:
            raise ValueError(
                f"style variants of shape {tuple(variants.shape)} do not fit the dataset's images "
                f"{tuple(dataset.images.shape)}"
            )
        self.variants, self.p = variants.to(dataset.images.device), p
        self.style_generator = torch.Generator().manual_seed(seed + 3)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "style_rng": self.style_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "style_rng" in state:
            self.style_generator.set_state(state["style_rng"])

    def _gather(self, classes: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        imgs = super()._gather(classes, draws)
        shape = draws.shape
        styled = torch.rand(shape, generator=self.style_generator) < self.p
        choice = torch.randint(self.variants.shape[2], shape, generator=self.style_generator)
        device = imgs.device
        picked = self.variants[classes.to(device)[..., None], draws.to(device), choice.to(device)]
        return torch.where(styled.to(device)[..., None, None], picked, imgs)

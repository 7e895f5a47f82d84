"""The style-shift benchmark: shipped models on evaluation-alphabet episodes under the shifts of a visitor's input.

Every support and query image of an episode is one of the evaluation alphabets' 105x105 originals,
shifted on its own (its own seed, so its own random strength and parameters) by the row's shift of
`playground.data.style_shift`, then sent through the app's `preprocess_image`: the figures measure the
preprocessing and the model together. The episodes (classes and drawings) are the same in every row
and for every model, so rows and models compare pairwise. ``none`` is the unshifted drawings through the
same path; ``overall`` pools the episodes of every named shift; ``mixed`` gives each image its own random
combination of one to three shifts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from playground.algorithms.base import MetaLearner
from playground.data.episodes import TaskBatch
from playground.data.omniglot import default_cache_dir
from playground.data.style_shift import (
    CACHE_VERSION,
    MIXED,
    NONE,
    SHIFT_NAMES,
    check_shift,
    code_version,
    image_seed,
    load_originals,
    shifted_image,
    style_for,
)
from playground.evaluation.few_shot import confidence_interval_95

ROWS: tuple[str, ...] = (NONE, *SHIFT_NAMES, MIXED)
# The default rows: clean and mixed, one number each, in minutes; ``--shifts all`` gives every shift. MAML
# adapts with 10 steps and the ensemble over 9 shifted views, so the full table takes them hours on 2 cores.
QUICK_ROWS: tuple[str, ...] = (NONE, MIXED)
ALL = "all"
OVERALL = "overall"  # the pooled episodes of every named shift
SETTINGS: tuple[tuple[int, int], ...] = ((5, 1), (5, 5), (20, 1))
DEFAULT_MODELS = ("protonet_lake", "maml_lake", "softkmeans_lake", "matching_lake", "ensemble_lake", "pixel_nn")
DEFAULT_EPISODES = 10  # per row and setting: a first look; the pooled overall has 13x as many
DEFAULT_QUERIES = 5  # per class


@dataclass
class Episode:
    classes: np.ndarray  # [n] indices into the evaluation characters
    draws: np.ndarray  # [n, k + q] drawing numbers


def sample_episodes(classes: int, n_way: int, k_shot: int, n_query: int, episodes: int, seed: int) -> list[Episode]:
    """Seeded episodes over ``classes`` characters of 20 drawings each (the same seed, the same episodes)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(episodes):
        chosen = rng.choice(classes, size=n_way, replace=False)
        draws = np.stack([rng.permutation(20)[: k_shot + n_query] for _ in range(n_way)])
        out.append(Episode(chosen, draws))
    return out


class ShiftedImages:
    """The 28x28 shifted images of the evaluation characters, one row (shift) at a time, computed on
    demand and cached on disk, so that a re-run renders nothing it rendered before."""

    def __init__(self, seed: int = 0, data_dir: str | Path | None = None, cache_dir: str | Path | None = None):
        self.originals = load_originals(data_dir, cache_dir)
        self.rows_of = [i for i, s in enumerate(self.originals.sets) if s == "images_evaluation"]
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._images: dict[str, np.ndarray] = {}
        self._done: dict[str, np.ndarray] = {}
        self._refused: dict[str, np.ndarray] = {}

    @property
    def classes(self) -> int:
        return len(self.rows_of)

    def _file(self, row: str) -> Path:
        key = hashlib.sha256(f"{row}|{self.seed}|{CACHE_VERSION}|{code_version()}".encode()).hexdigest()[:16]
        return self.cache_dir / f"style-bench-{row}-{key}.npz"

    def _load(self, row: str) -> None:
        if row in self._images:
            return
        shape = (self.classes, 20)
        images, done, refused = np.zeros((*shape, 28, 28), np.uint8), np.zeros(shape, bool), np.zeros(shape, bool)
        path = self._file(row)
        if path.exists():
            try:
                with np.load(path) as z:
                    images, done, refused = z["images"], z["done"], z["refused"]
            except Exception:
                path.unlink(missing_ok=True)
        self._images[row], self._done[row], self._refused[row] = images, done, refused

    def prepare(self, row: str, episodes: Sequence[Episode], workers: int = 1) -> None:
        """Render every image ``episodes`` need in ``row`` that the cache does not hold yet."""
        check_shift(row)
        self._load(row)
        done = self._done[row]
        need = sorted({(int(c), int(d)) for e in episodes for c, row_d in zip(e.classes, e.draws) for d in row_d})
        need = [(c, d) for c, d in need if not done[c, d]]
        if not need:
            return
        jobs = [(row, c, d) for c, d in need]
        if workers > 1 and len(jobs) > 200:
            import multiprocessing

            global _FORKED
            _FORKED = self  # the workers inherit it by fork, rather than each task pickling the drawings
            try:
                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    results = pool.map(_render_in_worker, jobs, chunksize=64)
            finally:
                _FORKED = None
        else:
            results = [self._render(j) for j in jobs]
        for (c, d), (img, bad) in zip(need, results):
            self._images[row][c, d] = img
            self._refused[row][c, d] = bad
            done[c, d] = True
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            path = self._file(row)
            tmp = path.with_suffix(".tmp.npz")
            np.savez_compressed(tmp, images=self._images[row], done=done, refused=self._refused[row])
            os.replace(tmp, path)
        except OSError:
            pass

    def _render(self, job: tuple[str, int, int]) -> tuple[np.ndarray, bool]:
        row, c, d = job
        name = self.originals.names[self.rows_of[c]]
        seed = image_seed("bench", self.seed, row, name, d)
        style = style_for(row, np.random.default_rng(seed))
        try:
            return shifted_image(self.originals.drawing(self.rows_of[c], d), style, seed), False
        except ValueError:
            # The app would refuse this picture with a message; the model then gets nothing to see.
            return np.zeros((28, 28), np.uint8), True

    def batch(self, row: str, episodes: Sequence[Episode], k_shot: int) -> tuple[TaskBatch, int]:
        """The episodes as a task batch (ink = 1) and how many of their images preprocessing refused."""
        images, refused = self._images[row], self._refused[row]
        n = len(episodes[0].classes)
        imgs = np.stack([images[e.classes[:, None], e.draws] for e in episodes])  # [B, n, k+q, 28, 28]
        bad = int(sum(refused[e.classes[:, None], e.draws].sum() for e in episodes))
        x = torch.from_numpy(imgs).float().div_(255.0).unsqueeze(3)
        b, q = len(episodes), imgs.shape[2] - k_shot
        labels = torch.arange(n)
        support_x = x[:, :, :k_shot].reshape(b, n * k_shot, 1, 28, 28)
        query_x = x[:, :, k_shot:].reshape(b, n * q, 1, 28, 28)
        support_y = labels.repeat_interleave(k_shot).expand(b, -1).contiguous()
        query_y = labels.repeat_interleave(q).expand(b, -1).contiguous()
        return TaskBatch(support_x, support_y, query_x, query_y), bad


_FORKED: ShiftedImages | None = None


def _render_in_worker(job: tuple[str, int, int]) -> tuple[np.ndarray, bool]:
    assert _FORKED is not None
    return _FORKED._render(job)


@dataclass
class Cell:
    model: str
    row: str
    n_way: int
    k_shot: int
    accuracies: list[float] = field(default_factory=list)
    refused: int = 0  # images preprocessing refused (shown to the model as blank)

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def ci95(self) -> float:
        return confidence_interval_95(self.accuracies)

    def text(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.ci95:.1f}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "shift": self.row,
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            "episodes": len(self.accuracies),
            "accuracy": round(self.mean, 6),
            "ci95": round(self.ci95, 6),
            "refused_images": self.refused,
            "text": self.text(),
        }


def style_shift_benchmark(
    learners: dict[str, MetaLearner],
    rows: Sequence[str] = ROWS,
    settings: Sequence[tuple[int, int]] = SETTINGS,
    episodes: int = DEFAULT_EPISODES,
    n_query: int = DEFAULT_QUERIES,
    seed: int = 0,
    images: ShiftedImages | None = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[Cell]:
    """Each learner's accuracy per row and setting (ways, shots), and ``overall`` over the named shifts.

    The learners adapt with their own settings (a model loaded with its card: the card's).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1 (got {episodes})")
    for row in rows:
        check_shift(row)
    images = images or ShiftedImages(seed)
    cells: list[Cell] = []
    for n_way, k_shot in settings:
        if k_shot + n_query > 20:
            raise ValueError(f"{k_shot} shots + {n_query} queries exceed the 20 drawings of a character")
        eps = sample_episodes(images.classes, n_way, k_shot, n_query, episodes, seed=seed + 1000 * n_way + k_shot)
        overall = {m: Cell(m, OVERALL, n_way, k_shot) for m in learners}
        for row in rows:
            images.prepare(row, eps, workers)
            batch, bad = images.batch(row, eps, k_shot)
            for name, learner in learners.items():
                learner.eval()
                accs: list[float] = []
                for start in range(0, len(eps), 25):
                    part = TaskBatch(
                        *(t[start : start + 25] for t in (batch.support_x, batch.support_y)),
                        *(t[start : start + 25] for t in (batch.query_x, batch.query_y)),
                    )
                    accs += learner.episode_accuracies(part).tolist()
                cell = Cell(name, row, n_way, k_shot, accs, bad)
                cells.append(cell)
                if row in SHIFT_NAMES:
                    overall[name].accuracies += accs
                    overall[name].refused += bad
                if progress is not None:
                    progress(f"{n_way}-way {k_shot}-shot {row:<12} {name:<16} {cell.text()}")
        cells += [c for c in overall.values() if c.accuracies]
    return cells


def format_table(cells: Sequence[Cell]) -> str:
    """One block per setting: a row per shift, a column per model, accuracy ± 95% CI in %."""
    models = list(dict.fromkeys(c.model for c in cells))
    lines = []
    for n_way, k_shot in dict.fromkeys((c.n_way, c.k_shot) for c in cells):
        block = [c for c in cells if (c.n_way, c.k_shot) == (n_way, k_shot)]
        episodes = max(len(c.accuracies) for c in block if c.row != OVERALL)
        lines.append(f"\n{n_way}-way {k_shot}-shot ({episodes} episodes per shift; % ± 95% CI)")
        lines.append(f"{'shift':<12} " + " ".join(f"{m:>16}" for m in models) + "  refused")
        for row in dict.fromkeys(c.row for c in block):
            by = {c.model: c for c in block if c.row == row}
            refused = next(iter(by.values())).refused
            lines.append(
                f"{row:<12} "
                + " ".join(f"{by[m].text():>16}" if m in by else " " * 16 for m in models)
                + f"  {refused}"
            )
    return "\n".join(lines)


DEFAULT_OUT = Path("test-artifacts") / "style_shift.json"
CARD_ROW = MIXED  # the row a card carries: every image its own combination of shifts, as visitors' are


def record_in_cards(record: dict[str, Any], entries: dict[str, Any], row: str = CARD_ROW) -> list[Path]:
    """Write ``row``'s figures of a benchmark ``record`` (the JSON `run_from_args` writes) into the cards of
    ``entries`` (model name -> `playground.zoo.shipped.ModelEntry`); the cards written. A model without
    the row is skipped."""
    from playground.zoo.card import ModelCard, Result, StyleShift
    from playground.zoo.checkpoints import write_card

    written = []
    for name, entry in entries.items():
        cells = [c for c in record["results"] if c["model"] == name and c["shift"] == row]
        if not cells:
            continue
        results = tuple(
            Result(
                n_way=c["n_way"],
                k_shot=c["k_shot"],
                episodes=c["episodes"],
                accuracy=c["accuracy"],
                ci95=c["ci95"],
                text=f"{c['text']} %",
            )
            for c in sorted(cells, key=lambda c: (c["n_way"], c["k_shot"]))
        )
        n_query, seed, command = record["queries_per_class"], record["seed"], record["command"]
        shift = StyleShift(row=row, n_query=n_query, seed=seed, command=command, results=results)
        card = dataclasses.replace(entry.card or ModelCard(algorithm=entry.algorithm), style_shift=shift)
        written.append(write_card(entry.path, card))
    return written


def _setting(text: str) -> tuple[int, int]:
    import argparse

    ways, _, shots = text.partition("x")
    try:
        return int(ways), int(shots)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a setting is WAYSxSHOTS, e.g. 5x1 (got {text!r})") from None


def add_arguments(ap: Any) -> None:
    """The benchmark's options, for `bench.style_shift` and ``python -m playground style-shift`` alike."""
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="shipped model names")
    ap.add_argument(
        "--shifts",
        nargs="+",
        default=list(QUICK_ROWS),
        choices=(*ROWS, ALL),
        help=f"rows; {ALL}: every one, and {OVERALL} pooled over the named shifts (default: {' '.join(QUICK_ROWS)})",
    )
    ap.add_argument(
        "--settings",
        nargs="+",
        type=_setting,
        default=list(SETTINGS),
        help="WAYSxSHOTS, e.g. 5x1 20x1 (default: 5x1 5x5 20x1)",
    )
    ap.add_argument(
        "--episodes", type=int, default=DEFAULT_EPISODES, help="episodes per shift and setting (default %(default)s)"
    )
    ap.add_argument("--query", type=int, default=DEFAULT_QUERIES, help="queries per class (default %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="processes rendering the shifted images (default 2)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results (default %(default)s)")
    ap.add_argument(
        "--record-cards",
        action="store_true",
        help=f"also write each model's {CARD_ROW} row into its model card (the README's style-shift column)",
    )


def run_from_args(args: Any, command: str, echo: Callable[[str], None] = print) -> list[Cell]:
    """Load the models, run the benchmark, print the table and write the JSON that ``args`` ask for."""
    import json
    import time

    from playground.zoo.shipped import shipped_models

    if args.episodes < 1:
        raise ValueError(f"--episodes must be at least 1 (got {args.episodes})")
    entries = {e.name: e for e in shipped_models()}
    unknown = [m for m in args.models if m not in entries]
    if unknown:
        raise ValueError(f"no shipped model named {', '.join(unknown)}; there are {', '.join(entries)}")
    learners = {m: entries[m].load("cpu", warm=False) for m in args.models}
    rows = list(ROWS) if ALL in args.shifts else list(dict.fromkeys(args.shifts))
    t0 = time.perf_counter()
    cells = style_shift_benchmark(
        learners, rows, args.settings, args.episodes, args.query, args.seed, workers=args.workers, progress=echo
    )
    took = time.perf_counter() - t0
    echo(format_table(cells))
    echo(f"\n{took:.0f} s; {torch.get_num_threads()} torch thread(s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": command,
        "episodes_per_cell": args.episodes,
        "queries_per_class": args.query,
        "seed": args.seed,
        "seconds": round(took, 1),
        "torch_threads": torch.get_num_threads(),
        "results": [c.as_dict() for c in cells],
    }
    args.out.write_text(json.dumps(record, indent=1))
    echo(f"wrote {args.out}")
    if args.record_cards:
        for path in record_in_cards(record, {m: entries[m] for m in args.models}):
            echo(f"wrote {path}")
    return cells

"""2-D projections of embeddings (t-SNE or PCA) for any number of points, cached by content.

t-SNE's perplexity must stay below the number of points, so it is clamped to what the point
count allows, and below 4 points t-SNE has nothing to work with: PCA is used instead. Every
projection says in ``note`` what was actually done, so a page can show it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

METHODS = ("tsne", "pca")
DEFAULT_PERPLEXITY = 30.0
MIN_TSNE_POINTS = 4


@dataclass(frozen=True)
class Projection:
    coords: np.ndarray  # [n, 2]
    method: str  # what ran: "tsne", "pca" or "none" (a single point)
    note: str  # in words, for the page: method, perplexity, fallbacks


def _pca(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(0, keepdims=True)
    # SVD of the centred points: the top two right singular vectors are the principal axes.
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ vt[:2].T
    if coords.shape[1] < 2:  # one feature, or fewer points than two axes need
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    # Fix each axis's sign (SVD's is arbitrary), so the same points always give the same picture.
    signs = np.sign(coords[np.abs(coords).argmax(0), range(2)])
    return coords * np.where(signs == 0, 1, signs)


def tsne_perplexity(n_points: int, wanted: float = DEFAULT_PERPLEXITY) -> float:
    """The perplexity t-SNE can use for ``n_points``: at most ``wanted`` and at most (n - 1) / 3."""
    return float(max(1.0, min(wanted, (n_points - 1) / 3)))


def _project(points: np.ndarray, method: str, seed: int, perplexity: float) -> Projection:
    n = len(points)
    if n == 1:
        return Projection(np.zeros((1, 2)), "none", "one point: nothing to project")
    if method == "pca" or n < MIN_TSNE_POINTS:
        note = "PCA (the two directions of largest variance)"
        if method == "tsne":
            note = f"PCA: t-SNE needs at least {MIN_TSNE_POINTS} points and there are {n}"
        return Projection(_pca(points), "pca", note)
    from sklearn.manifold import TSNE  # imported here: it takes a second, and PCA does not need it

    p = tsne_perplexity(n, perplexity)
    coords = TSNE(
        n_components=2, perplexity=p, init="pca", random_state=seed, learning_rate="auto", n_jobs=1
    ).fit_transform(points)
    clamped = f", clamped from {perplexity:g} for {n} points" if p < perplexity else ""
    return Projection(coords, "tsne", f"t-SNE, perplexity {p:.3g}{clamped}, PCA initialisation, seed {seed}")


class ProjectionCache:
    """Projections by the bytes of their points: a rerun of the same task costs nothing."""

    def __init__(self, size: int = 64):
        self.size, self.hits, self.misses = size, 0, 0
        self._items: OrderedDict[str, Projection] = OrderedDict()
        self._lock = threading.Lock()  # one cache serves every session's thread

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get_or_compute(self, points: np.ndarray, method: str, seed: int, perplexity: float) -> Projection:
        digest = hashlib.sha1(points.tobytes()).hexdigest()
        key = f"{digest}:{points.shape}:{method}:{seed}:{perplexity}"
        with self._lock:
            if key in self._items:
                self.hits += 1
                self._items.move_to_end(key)
                return self._items[key]
        result = _project(points, method, seed, perplexity)
        with self._lock:
            self.misses += 1
            self._items[key] = result
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return result


CACHE = ProjectionCache()


def project_2d(
    points: np.ndarray, method: str = "tsne", seed: int = 0, perplexity: float = DEFAULT_PERPLEXITY
) -> Projection:
    """Project points [n, d] to 2-D with t-SNE or PCA; any n >= 1 works (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (got {method!r})")
    points = np.ascontiguousarray(np.asarray(points, dtype=np.float32))
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"points must be a non-empty [n, d] array (got shape {list(points.shape)})")
    if not np.isfinite(points).all():
        raise ValueError("points contain NaN or infinite values")
    if not perplexity > 0:
        raise ValueError(f"perplexity must be positive (got {perplexity})")
    return CACHE.get_or_compute(points, method, seed, perplexity)

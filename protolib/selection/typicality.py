"""Label-free selection by typicality: ``typical``, and the ranking behind ``protolib rank``.

From the training images' frozen features alone (nothing labelled):

1. typicality: the mean squared distance of each image to its ``neighbours`` nearest other
   images (local density; small = typical), in the ``metric`` (``cosine``: features scaled to
   unit length, the default; ``sqeuclidean``: as they are);
2. the ``tail`` most atypical share of the pool is left out: long-tail, noisy or corrupted
   images (a GMM core-set spends components on them, and their nearest image is the outlier
   itself). Default 0: on Fashion-MNIST (kNN on pixels) leaving out half the pool lowered the
   test AUROC at every M, and the cover below does not pick isolated outliers for small M;
3. M prototypes that cover the typical core: greedy facility location (the BUILD step of
   k-medoids), each step adding the image that most lowers the summed squared distance of the
   typical images to their nearest prototype. Deterministic: no seed is used.

``protolib rank`` uses the same function (:func:`typicality`, with ``sqeuclidean`` distances
and its ``--n-atypical`` images as the tail): its core-set is this selector's subset, and an
image's rank is the mean of its typicality rank and its rank by distance to the nearest
prototype (:meth:`Typicality.rank`).

Size: up to ``EXACT_MAX`` (10 000) images all of this is computed exactly on the (n, n)
distance matrix, one float64 matrix and block-sized scratch (800 MB at 10 000 images). Above
it, :mod:`protolib.selection.typicality_scaled`: the same kNN typicality by an exact faiss
search in chunks, and the cover by candidate-sampled greedy, in memory linear in n
(``docs/rank.md`` gives the algorithm and its measured objective against the exact cover).

Cosine is the default because raw-pixel (and ReLU-feature) distances are dominated by the
images' norms: the densest images in squared L2 are the faint ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protolib.models.neighbours import squared_distances
from protolib.selection import typicality_scaled
from protolib.selection.base import SELECTORS, Selection, SelectionContext, Selector
from protolib.selection.typicality_result import Typicality, typical_rows
from protolib.selection.typicality_scaled import ScaledPass

METRICS = ("cosine", "sqeuclidean")


def in_metric(features: np.ndarray, metric: str) -> np.ndarray:
    """Features whose squared L2 distances are the metric's: as they are (``sqeuclidean``), or
    scaled to unit length (``cosine``: squared distance 2 - 2 cos)."""
    z = np.asarray(features, dtype=np.float64)
    if metric == "sqeuclidean":
        return z
    if metric == "cosine":
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        return z / np.where(norms > 0, norms, 1.0)
    raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")


class GreedyCover:
    """Greedy facility location over a (n, n) squared-distance matrix, grown one prototype at a
    time: each step adds the row that most lowers sum_i min_{j in S} d(j, i) (ties: the smallest
    index). Greedy, so the first M of a longer run are exactly the M-prototype cover: one run
    serves every M (the selector asks for 1, 5, 10, 25).

    ``rows``: cover only these rows and columns of ``distances`` (the typical core), read block
    by block rather than copied. Each step works through ``block`` rows at a time, so the scratch
    is ``block`` x n, not n x n; every row's sum is the same numbers summed in the same order as
    over the whole matrix, so the cover is the same."""

    def __init__(self, distances: np.ndarray, rows: np.ndarray | None = None, block: int = 512) -> None:
        self.distances = distances
        self.rows = rows
        n = len(distances) if rows is None else len(rows)
        self.nearest = np.full(n, np.inf)
        self.chosen: list[int] = []
        self.block = block

    def _rows(self, start: int, stop: int) -> np.ndarray:
        if self.rows is None:
            return self.distances[start:stop]
        return self.distances[self.rows[start:stop]][:, self.rows]

    def first(self, M: int) -> list[int]:
        n = len(self.nearest)
        while len(self.chosen) < M:
            cost = np.empty(n)
            for start in range(0, n, self.block):
                chunk = self._rows(start, start + self.block)
                cost[start : start + len(chunk)] = np.minimum(chunk, self.nearest[None, :]).sum(axis=1)
            cost[self.chosen] = np.inf
            j = int(np.argmin(cost))
            self.chosen.append(j)
            self.nearest = np.minimum(self.nearest, self._rows(j, j + 1)[0])
        return self.chosen[:M]


def cover(distances: np.ndarray, M: int) -> list[int]:
    """M row indices of the greedy facility-location cover of ``distances`` (:class:`GreedyCover`)."""
    return GreedyCover(distances).first(M)


def typicality(
    features: np.ndarray,
    M: int,
    neighbours: int,
    exclude: int = 0,
    device: str = "cpu",
    distances: np.ndarray | None = None,
    progress: bool | None = None,
) -> Typicality:
    """Typicality of every row, and M prototypes covering all but the ``exclude`` most atypical.

    ``distances``: the rows' (n, n) squared distances, when the caller has them. Otherwise
    :func:`make_pass` decides: the exact matrix (n^2 float64: 800 MB at 10 000 rows) up to
    ``EXACT_MAX`` rows, the linear-memory pass above."""
    if distances is not None:
        return TypicalityPass(distances, neighbours).find(M, exclude)
    return make_pass(features, neighbours, device, progress).find(M, exclude)


def make_pass(
    features: np.ndarray, neighbours: int, device: str = "cpu", progress: bool | None = None, index: str = "flat"
) -> TypicalityPass | ScaledPass:
    """Exact (:class:`TypicalityPass` on the full distance matrix) up to ``EXACT_MAX`` rows,
    :class:`~protolib.selection.typicality_scaled.ScaledPass` (memory linear in n) above, and
    whenever an approximate kNN ``index`` (``ivf``) is asked for."""

    if len(features) > typicality_scaled.EXACT_MAX or index != "flat":  # read at call time (tests lower it)
        return ScaledPass(features, neighbours, progress, index)
    return TypicalityPass(squared_distances(features, features, device=device), neighbours)


class TypicalityPass:
    """What :func:`typicality` works out from one distance matrix, kept for every M: the kNN
    typicality, and one growing cover per ``exclude``."""

    def __init__(self, distances: np.ndarray, neighbours: int) -> None:
        self.distances = distances
        self.knn = knn_from_distances(distances, neighbours)
        self._covers: dict[int, tuple[np.ndarray, np.ndarray, GreedyCover]] = {}  # typical, its rows, cover

    def find(self, M: int, exclude: int = 0) -> Typicality:
        d, n = self.distances, len(self.distances)
        if n - exclude < M:
            raise ValueError(f"M = {M} is larger than the {n - exclude} typical samples to choose from")
        if exclude not in self._covers:
            typical, rows = typical_rows(self.knn, exclude)
            self._covers[exclude] = (typical, rows, GreedyCover(d, None if exclude == 0 else rows))
        typical, rows, covering = self._covers[exclude]
        core = [int(rows[j]) for j in covering.first(M)]
        to_core = d[:, core]
        core_dist, nearest = to_core.min(axis=1), np.asarray(core)[to_core.argmin(axis=1)]
        core_dist[core], nearest[core] = 0.0, core
        return Typicality(knn=self.knn, core=core, typical=typical.copy(), core_dist=core_dist, nearest_core=nearest)


def knn_from_distances(distances: np.ndarray, k: int, block: int = 512) -> np.ndarray:
    """Mean of each row's k smallest entries off the diagonal (k capped at n - 1), ``block``
    rows at a time (a block x n scratch, not a copy of the matrix)."""
    n = len(distances)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(n, dtype=np.float64)
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, block):
        d = distances[start : start + block].copy()
        d[np.arange(len(d)), np.arange(start, start + len(d))] = np.inf  # not itself (an identical copy still counts)
        out[start : start + len(d)] = np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)
    return out


@SELECTORS.register("typical")
class TypicalSelector(Selector):
    """M prototypes covering the typical core of the training pool (see the module doc)."""

    name = "typical"

    def __init__(self, *, neighbours: int = 5, tail: float = 0.0, metric: str = "cosine", pool: str = "train") -> None:
        self.neighbours = neighbours
        self.tail = tail
        self.metric = metric
        self.pool = pool
        self._pass: tuple[Any, TypicalityPass] | None = None  # the last pool's, reused for every M

    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection:
        if context.pool_features is None or context.pool_ids is None:
            raise ValueError("typical needs the frozen features of the training pool")
        ids = np.asarray(context.pool_ids)
        z = in_metric(context.pool_features, self.metric)
        if self.pool == "candidates":
            keep = np.isin(ids, context.candidates)
            ids, z = ids[keep], z[keep]
        self._check_size(context, M, pool=len(ids))
        if self.neighbours > len(ids) - 1:
            raise ValueError(
                f"selection.typical.neighbours: {self.neighbours} is more than the {len(ids) - 1} other "
                f"images of the pool; at most {len(ids) - 1}"
            )
        exclude = min(int(self.tail * len(ids)), len(ids) - M)
        found = self._pool_pass(z).find(M, exclude)
        return Selection(
            ids=[int(ids[j]) for j in found.core],
            fitness=float(found.core_dist[found.typical].sum()),
            info={
                "fitness": "summed squared distance of the typical images to their nearest prototype",
                "neighbours": self.neighbours,
                "tail": self.tail,
                "metric": self.metric,
                "excluded": exclude,
                "pool": self.pool,
            },
        )

    def _pool_pass(self, z: np.ndarray) -> TypicalityPass | ScaledPass:
        """The typicality pass over this pool's features: computed for the first M, reused for
        the others (one distance matrix, one kNN, one growing cover)."""
        key = (z.shape, hash(z.tobytes()), self.neighbours)
        if self._pass is None or self._pass[0] != key:
            self._pass = (key, make_pass(z, self.neighbours))
        return self._pass[1]

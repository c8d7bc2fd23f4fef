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

Cosine is the default because raw-pixel (and ReLU-feature) distances are dominated by the
images' norms: the densest images in squared L2 are the faint ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from protolib.selection.base import SELECTORS, Selection, SelectionContext, Selector

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
    serves every M (the selector asks for 1, 5, 10, 25)."""

    def __init__(self, distances: np.ndarray) -> None:
        self.distances = distances
        self.nearest = np.full(distances.shape[1], np.inf)
        self.chosen: list[int] = []
        self._buffer: np.ndarray | None = None  # one (n, n) scratch for every step

    def first(self, M: int) -> list[int]:
        while len(self.chosen) < M:
            if self._buffer is None:
                self._buffer = np.empty_like(self.distances)
            cost = np.minimum(self.distances, self.nearest[None, :], out=self._buffer).sum(axis=1)
            cost[self.chosen] = np.inf
            j = int(np.argmin(cost))
            self.chosen.append(j)
            self.nearest = np.minimum(self.nearest, self.distances[j])
        return self.chosen[:M]


def cover(distances: np.ndarray, M: int) -> list[int]:
    """M row indices of the greedy facility-location cover of ``distances`` (:class:`GreedyCover`)."""
    return GreedyCover(distances).first(M)


@dataclass
class Typicality:
    """What the typicality pass finds, indexed like the features it was given."""

    knn: np.ndarray  # mean squared distance to the nearest neighbours (small = typical)
    core: list[int]  # the M prototypes, in the order chosen
    typical: np.ndarray  # bool: in the typical core the prototypes cover (not in the tail)
    core_dist: np.ndarray  # squared distance to the nearest prototype (0 for the prototypes)
    nearest_core: np.ndarray  # index of that prototype

    def knn_rank(self) -> np.ndarray:
        from scipy.stats import rankdata

        return rankdata(self.knn, method="average")

    def core_rank(self) -> np.ndarray:
        from scipy.stats import rankdata

        return rankdata(self.core_dist, method="average")

    def rank(self, names: list[str] | None = None) -> np.ndarray:
        """1 = most prototypical: by the mean of the typicality and core-distance ranks (ties:
        smaller kNN distance, then ``names``)."""
        n = len(self.knn)
        keys = [np.array(names) if names is not None else np.arange(n), self.knn,
                (self.knn_rank() + self.core_rank()) / 2.0]
        rank = np.empty(n, dtype=np.int64)
        rank[np.lexsort(keys)] = np.arange(1, n + 1)
        return rank


def typicality(features: np.ndarray, M: int, neighbours: int, exclude: int = 0, device: str = "cpu",
               distances: np.ndarray | None = None) -> Typicality:
    """Typicality of every row, and M prototypes covering all but the ``exclude`` most atypical.

    ``distances``: the rows' (n, n) squared distances, when the caller has them; else computed
    here (n^2 float64: 128 MB for 4000 images)."""
    from protolib.models.neighbours import squared_distances

    d = squared_distances(features, features, device=device) if distances is None else distances
    return TypicalityPass(d, neighbours).find(M, exclude)


class TypicalityPass:
    """What :func:`typicality` works out from one distance matrix, kept for every M: the kNN
    typicality, and one growing cover per ``exclude``."""

    def __init__(self, distances: np.ndarray, neighbours: int) -> None:
        self.distances = distances
        self.knn = knn_from_distances(distances, neighbours)
        self._covers: dict[int, tuple[np.ndarray, np.ndarray, GreedyCover]] = {}  # typical, its rows, cover

    def find(self, M: int, exclude: int = 0) -> Typicality:
        d, n = self.distances, len(self.distances)
        if M > n - exclude:
            raise ValueError(f"M = {M} is larger than the {n - exclude} typical samples to choose from")
        if exclude not in self._covers:
            typical = np.ones(n, dtype=bool)
            typical[np.argsort(-self.knn, kind="stable")[:exclude]] = False
            rows = np.flatnonzero(typical)
            self._covers[exclude] = (typical, rows, GreedyCover(d if exclude == 0 else d[np.ix_(rows, rows)]))
        typical, rows, covering = self._covers[exclude]
        core = [int(rows[j]) for j in covering.first(M)]
        to_core = d[:, core]
        core_dist, nearest = to_core.min(axis=1), np.asarray(core)[to_core.argmin(axis=1)]
        core_dist[core], nearest[core] = 0.0, core
        return Typicality(knn=self.knn, core=core, typical=typical.copy(), core_dist=core_dist, nearest_core=nearest)


def knn_from_distances(distances: np.ndarray, k: int) -> np.ndarray:
    """Mean of each row's k smallest entries off the diagonal (k capped at n - 1)."""
    n = len(distances)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(n, dtype=np.float64)
    d = distances.copy()
    np.fill_diagonal(d, np.inf)  # not itself (an identical copy still counts)
    return np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)


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
            raise ValueError(f"selection.typical.neighbours: {self.neighbours} is more than the {len(ids) - 1} other "
                             f"images of the pool; at most {len(ids) - 1}")
        exclude = min(int(self.tail * len(ids)), len(ids) - M)
        found = self._pool_pass(z).find(M, exclude)
        return Selection(
            ids=[int(ids[j]) for j in found.core],
            fitness=float(found.core_dist[found.typical].sum()),
            info={"fitness": "summed squared distance of the typical images to their nearest prototype",
                  "neighbours": self.neighbours, "tail": self.tail, "metric": self.metric, "excluded": exclude,
                  "pool": self.pool},
        )

    def _pool_pass(self, z: np.ndarray) -> TypicalityPass:
        """The typicality pass over this pool's features: computed for the first M, reused for
        the others (one distance matrix, one kNN, one growing cover)."""
        from protolib.models.neighbours import squared_distances

        key = (z.shape, hash(z.tobytes()), self.neighbours)
        if self._pass is None or self._pass[0] != key:
            self._pass = (key, TypicalityPass(squared_distances(z, z), self.neighbours))
        return self._pass[1]

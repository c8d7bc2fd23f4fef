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


def cover(distances: np.ndarray, M: int) -> list[int]:
    """Greedy facility location over a (n, n) squared-distance matrix: M row indices, each
    the one that most lowers sum_i min_{j in S} d(j, i) (ties: the smallest index)."""
    nearest = np.full(distances.shape[1], np.inf)
    chosen: list[int] = []
    for _ in range(M):
        cost = np.minimum(distances, nearest[None, :]).sum(axis=1)
        cost[chosen] = np.inf
        j = int(np.argmin(cost))
        chosen.append(j)
        nearest = np.minimum(nearest, distances[j])
    return chosen


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
               progress: bool | None = False, distances: np.ndarray | None = None) -> Typicality:
    """Typicality of every row, and M prototypes covering all but the ``exclude`` most atypical.

    ``distances``: the rows' (n, n) squared distances, when the caller has them (one matrix
    serves every M); else computed here (n^2 float64: 128 MB for 4000 images)."""
    from protolib.models.neighbours import squared_distances

    n = len(features)
    if M > n - exclude:
        raise ValueError(f"M = {M} is larger than the {n - exclude} typical samples to choose from")
    d = squared_distances(features, features, device=device) if distances is None else distances
    knn = knn_from_distances(d, neighbours)
    typical = np.ones(n, dtype=bool)
    typical[np.argsort(-knn, kind="stable")[:exclude]] = False
    rows = np.flatnonzero(typical)
    core = [int(rows[j]) for j in cover(d[np.ix_(rows, rows)], M)]
    to_core = d[:, core]
    core_dist, nearest = to_core.min(axis=1), np.asarray(core)[to_core.argmin(axis=1)]
    core_dist[core], nearest[core] = 0.0, core
    return Typicality(knn=knn, core=core, typical=typical, core_dist=core_dist, nearest_core=nearest)


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
        self._distances: tuple[Any, np.ndarray] | None = None  # the last pool's, reused for every M

    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection:
        if context.pool_features is None or context.pool_ids is None:
            raise ValueError("typical needs the frozen features of the training pool")
        ids = np.asarray(context.pool_ids)
        z = in_metric(context.pool_features, self.metric)
        if self.pool == "candidates":
            keep = np.isin(ids, context.candidates)
            ids, z = ids[keep], z[keep]
        self._check_size(context, M, pool=len(ids))
        exclude = min(int(self.tail * len(ids)), len(ids) - M)
        found = typicality(z, M, neighbours=self.neighbours, exclude=exclude, distances=self._pool_distances(z))
        return Selection(
            ids=[int(ids[j]) for j in found.core],
            fitness=float(found.core_dist[found.typical].sum()),
            info={"fitness": "summed squared distance of the typical images to their nearest prototype",
                  "neighbours": self.neighbours, "tail": self.tail, "metric": self.metric, "excluded": exclude,
                  "pool": self.pool},
        )


    def _pool_distances(self, z: np.ndarray) -> np.ndarray:
        from protolib.models.neighbours import squared_distances

        key = (z.shape, hash(z.tobytes()))
        if self._distances is None or self._distances[0] != key:
            self._distances = (key, squared_distances(z, z))
        return self._distances[1]

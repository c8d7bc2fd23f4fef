"""Typicality and the core-set above ``EXACT_MAX`` images, in memory linear in n.

Up to ``EXACT_MAX`` images :class:`protolib.selection.typicality.TypicalityPass` works on the
full (n, n) float64 distance matrix, exactly as defined. Above it nothing n x n is built:

* kNN typicality: an exact search (faiss's brute-force ``knn``, float32 arithmetic, queries
  ``chunk`` rows at a time): the same neighbours as the matrix up to float32 rounding (about
  1e-6 relative), memory n x k;
* the cover: candidate-sampled greedy facility location with refinement. The objective is the
  exact one (the summed squared distance of every covered image to its nearest prototype);
  each step takes the best of ``C`` candidates (the ``C/2`` most typical images and ``C/2``
  spread evenly over the rest in file order, so sparse regions have candidates too;
  ``C = MAX_CANDIDATES``; no C x n block is kept: the candidates are scored in tiles, lazily
  after the second step, see :class:`SampledCover`), then tries in its place the images nearest to it and nearest to
  the mean of the images it would take over (see :meth:`SampledCover._refine`), while that
  lowers the objective. No seed: deterministic. The first M of a longer run are the M-cover;
* the distance of every image to its nearest prototype: exact, float64, n x M in tiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protolib.models.neighbours import squared_distances
from protolib.selection.typicality_result import Typicality, typical_rows

#: up to this many images typicality and cover are exact (the full distance matrix); above, this module
EXACT_MAX = 10_000
#: candidate prototypes of the sampled cover (scored in C x CHUNK tiles)
MAX_CANDIDATES = 4096
#: images near the best candidate (and near the mean of what it takes over) tried in its place, per round
REFINE = 128
REFINE_ROUNDS = 8
#: candidates rescored together by the lazy greedy steps
LAZY_BATCH = 32
#: best candidates refined per step; the best refined one is taken
REFINE_TOP = 3
#: kNN searches: exact (``flat``, the default) or faiss's inverted file (``ivf``, only when asked)
KNN_INDEXES = ("flat", "ivf")
IVF_NPROBE = 16
RECALL_SAMPLE = 1000
#: rows per tile (kNN queries, cover steps)
CHUNK = 2048


def _bar(total: int, desc: str, progress: bool | None, unit: str = "it") -> Any:
    # here: tqdm only for the scaled pass's progress bars
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None if progress is None else not progress)


def knn_faiss(
    x: np.ndarray, k: int, progress: bool | None = None, chunk: int = CHUNK, index: str = "flat"
) -> tuple[np.ndarray, float | None]:
    """Mean squared distance of each row to its k nearest other rows (k capped at n - 1), and
    the search's recall (None for the exact search). ``flat``: an exact faiss search in float32,
    ``chunk`` queries at a time; ``ivf`` (only when asked): faiss's inverted-file index,
    ``4 sqrt(n)`` lists, ``IVF_NPROBE`` probed, its recall of the exact k neighbours measured on
    ``RECALL_SAMPLE`` images spread over the set. A row's own entry is dropped by index, so an
    identical copy still counts as a neighbour."""
    # here: faiss only for the scaled pass
    import faiss

    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(n, dtype=np.float64), None
    if index not in KNN_INDEXES:
        raise ValueError(f"unknown kNN index {index!r}; allowed: {', '.join(KNN_INDEXES)}")
    ivf = _ivf(x) if index == "ivf" else None
    search = (lambda q: faiss.knn(q, x, k + 1)) if ivf is None else (lambda q: ivf.search(q, k + 1))
    out = np.empty(n, dtype=np.float64)
    with _bar(n, f"k nearest neighbours ({index})", progress, "img") as bar:
        for start in range(0, n, chunk):
            q = x[start : start + chunk]
            found, ids = search(q)
            out[start : start + len(q)] = _mean_of_others(found, ids, start, k)
            bar.update(len(q))
    if index == "flat":
        return out, None
    sample = np.unique(np.linspace(0, n - 1, min(RECALL_SAMPLE, n)).round().astype(np.int64))
    _, exact = faiss.knn(x[sample], x, k + 1)
    _, approx = search(x[sample])
    recall = np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)])
    return out, float(recall)


def _mean_of_others(found: np.ndarray, ids: np.ndarray, start: int, k: int) -> np.ndarray:
    found = found.astype(np.float64)
    found[(ids == np.arange(start, start + len(ids))[:, None]) | (ids < 0)] = np.inf  # itself; no result
    nearest = np.sort(found, axis=1)[:, :k]
    nearest[~np.isfinite(nearest)] = np.nan  # an IVF search that found fewer than k
    return np.maximum(np.nanmean(nearest, axis=1), 0.0)


def _ivf(x: np.ndarray) -> Any:
    # here: faiss only for the scaled pass
    import faiss

    lists = max(1, min(int(4 * np.sqrt(len(x))), len(x) // 39))
    ivf = faiss.index_factory(x.shape[1], f"IVF{lists},Flat")  # owns its quantizer
    train = x[np.linspace(0, len(x) - 1, min(len(x), 64 * lists)).round().astype(np.int64)]
    ivf.train(np.ascontiguousarray(train))
    ivf.add(x)
    faiss.extract_index_ivf(ivf).nprobe = min(IVF_NPROBE, lists)
    return ivf


def candidate_count(rows: int) -> int:
    return int(max(1, min(rows, MAX_CANDIDATES)))


def choose_candidates(knn: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """Positions in ``rows``: the count/2 most typical, then the rest spread evenly over the others."""
    if count >= len(rows):
        return np.arange(len(rows))
    order = np.argsort(knn[rows], kind="stable")
    dense = order[: count // 2]
    rest = np.sort(order[count // 2 :])
    spread = rest[np.linspace(0, len(rest) - 1, count - len(dense)).round().astype(np.int64)]
    return np.unique(np.concatenate([dense, spread]))


def _tile_squared(a: np.ndarray, b: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    """float32 squared distances of two float32 blocks (Gram expansion, clipped at 0)."""
    d = (a * a).sum(1, dtype=np.float32)[:, None] + b_norms[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0, out=d)


class SampledCover:
    """Greedy facility location over ``rows`` of ``x`` with prototypes drawn from candidates
    (see the module doc); :meth:`first` as :class:`~protolib.selection.typicality.GreedyCover`'s.

    No candidate x n block is kept: the first two steps score every candidate in one tiled pass
    each; later steps are lazy (a candidate's gain, the objective's decrease, can only shrink as
    prototypes are added, so only candidates whose last gain beats the best fresh one are
    rescored, ``LAZY_BATCH`` rows at a time)."""

    def __init__(self, x: np.ndarray, rows: np.ndarray, knn: np.ndarray, progress: bool | None = None) -> None:
        self.rows = rows
        self.candidates = choose_candidates(knn, rows, candidate_count(len(rows)))
        xr_norms = np.empty(len(rows), dtype=np.float32)
        for start in range(0, len(rows), CHUNK):
            block = x[rows[start : start + CHUNK]]
            xr_norms[start : start + len(block)] = (block * block).sum(1, dtype=np.float32)
        self.norms = xr_norms
        self.cand = x[rows[self.candidates]]  # C x dim
        self.position = np.full(len(x), -1, dtype=np.int64)  # row -> position in rows
        self.position[rows] = np.arange(len(rows))
        self.x = x
        self.nearest = np.full(len(rows), np.inf, dtype=np.float32)
        self.gain = np.full(len(self.candidates), np.inf)  # upper bounds of each candidate's gain
        self.chosen: list[int] = []  # positions in rows
        self.progress = progress

    def _distances(self, q: np.ndarray) -> np.ndarray:
        """float32 squared distances of the query rows ``q`` to every covered image, in tiles."""
        d = np.empty((len(q), len(self.rows)), dtype=np.float32)
        for start in range(0, len(self.rows), CHUNK):
            d[:, start : start + CHUNK] = _tile_squared(
                q, self.x[self.rows[start : start + CHUNK]], self.norms[start : start + CHUNK]
            )
        return d

    def _costs(self, d: np.ndarray) -> np.ndarray:
        return np.minimum(d, self.nearest).sum(axis=1, dtype=np.float64)

    def _all_costs(self) -> np.ndarray:
        """Every candidate's cost (the objective with it added), in C x ``CHUNK`` tiles."""
        cost = np.zeros(len(self.candidates))
        with _bar(len(self.rows), f"scoring {len(self.candidates)} candidate prototypes", self.progress, "img") as bar:
            for start in range(0, len(self.rows), CHUNK):
                tile = _tile_squared(
                    self.cand, self.x[self.rows[start : start + CHUNK]], self.norms[start : start + CHUNK]
                )
                cost += np.minimum(tile, self.nearest[start : start + CHUNK]).sum(axis=1, dtype=np.float64)
                bar.update(tile.shape[1])
        return cost

    def _best(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``REFINE_TOP`` candidates (indices into ``candidates``) of least cost, and their costs."""
        taken = np.isin(self.candidates, self.chosen)
        top = min(REFINE_TOP, int((~taken).sum()))
        if not np.isfinite(self.gain[~taken]).all():  # no bounds yet: score every candidate
            cost = self._all_costs()
            cost[taken] = np.inf
            if np.isfinite(self.nearest).all():
                self.gain = self.nearest.sum(dtype=np.float64) - cost
            best = np.argsort(cost, kind="stable")[:top]
            return best, cost[best]
        total = self.nearest.sum(dtype=np.float64)
        gain = np.where(taken, -np.inf, self.gain)
        fresh = np.zeros(len(gain), dtype=bool)
        while True:
            order = np.argsort(-gain, kind="stable")
            if fresh[order[:top]].all():
                self.gain = gain
                return order[:top], total - gain[order[:top]]
            stale = order[:LAZY_BATCH][~fresh[order[:LAZY_BATCH]]]
            gain[stale] = total - self._costs(self._distances(self.cand[stale]))
            fresh[stale] = True

    def _step(self) -> tuple[int, np.ndarray]:
        """The next prototype (position in rows) and its distances: the best of the refined
        ``REFINE_TOP`` best candidates."""
        found = []
        for c, cost in zip(*self._best()):
            found.append(self._refine(int(self.candidates[c]), float(cost), self._distances(self.cand[c : c + 1])[0]))
        return min(found, key=lambda f: f[2])

    def first(self, M: int) -> list[int]:
        with _bar(M, "core-set (greedy cover)", self.progress, "prototype") as bar:
            bar.update(len(self.chosen[:M]))
            while len(self.chosen) < M:
                j, row, _ = self._step()
                self.chosen.append(j)
                self.nearest = np.minimum(self.nearest, row)
                bar.update(1)
        return self.chosen[:M]

    def _refine(self, pos: int, cost: float, row: np.ndarray) -> tuple[int, np.ndarray, float]:
        """The best of ``pos``, its ``REFINE`` nearest covered images and the ``REFINE`` nearest
        to the mean of the images it would take over, repeated from the new one while that
        lowers the cost (at most ``REFINE_ROUNDS``). In squared L2 the summed distance of a set
        to a point is |set| x (its distance to the set's mean) + a constant, so the best
        replacement lies near that mean -- rarely among the candidates, usually found here."""
        # here: faiss only for the scaled pass
        import faiss

        k = min(REFINE, len(self.x))
        for _ in range(REFINE_ROUNDS):
            queries = np.stack([self.x[self.rows[pos]], self._mean_of(row < self.nearest)]).astype(np.float32)
            _, ids = faiss.knn(queries, self.x, k)
            ids = np.unique(ids[ids >= 0])
            near = self.position[ids]
            near = near[(near >= 0) & ~np.isin(near, self.chosen) & (near != pos)]
            if len(near) == 0:
                break
            d = self._distances(self.x[self.rows[near]])
            costs = self._costs(d)
            best = int(np.argmin(costs))
            if not costs[best] < cost:
                break
            pos, cost, row = int(near[best]), float(costs[best]), d[best].copy()
        return pos, row, cost

    def _mean_of(self, taken: np.ndarray) -> np.ndarray:
        """The mean of the rows at the positions ``taken`` (float64, in tiles)."""
        total, count = np.zeros(self.x.shape[1]), 0
        for start in range(0, len(self.rows), CHUNK):
            mask = taken[start : start + CHUNK]
            if mask.any():
                total += self.x[self.rows[start : start + CHUNK][mask]].sum(axis=0, dtype=np.float64)
                count += int(mask.sum())
        return total / max(count, 1)


class ScaledPass:
    """:class:`~protolib.selection.typicality.TypicalityPass`'s interface without an n x n matrix."""

    def __init__(
        self, features: np.ndarray, neighbours: int, progress: bool | None = None, index: str = "flat"
    ) -> None:
        self.x = np.ascontiguousarray(features, dtype=np.float32)
        self.progress = progress
        self.knn, self.recall = knn_faiss(self.x, neighbours, progress, index=index)
        self._covers: dict[int, tuple[np.ndarray, np.ndarray, SampledCover]] = {}

    def find(self, M: int, exclude: int = 0) -> Any:
        n = len(self.x)
        if n - exclude < M:
            raise ValueError(f"M = {M} is larger than the {n - exclude} typical samples to choose from")
        if exclude not in self._covers:
            typical, rows = typical_rows(self.knn, exclude)
            self._covers[exclude] = (typical, rows, SampledCover(self.x, rows, self.knn, self.progress))
        typical, rows, covering = self._covers[exclude]
        core = [int(rows[j]) for j in covering.first(M)]
        core_dist, nearest = self.to_nearest(core)
        return Typicality(knn=self.knn, core=core, typical=typical.copy(), core_dist=core_dist, nearest_core=nearest)

    def to_nearest(self, core: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Each row's exact (float64) squared distance to its nearest prototype, and that prototype."""

        prototypes = self.x[core].astype(np.float64)
        core_dist = np.empty(len(self.x))
        nearest = np.empty(len(self.x), dtype=np.int64)
        for start in range(0, len(self.x), CHUNK):
            d = squared_distances(self.x[start : start + CHUNK], prototypes)
            core_dist[start : start + len(d)] = d.min(axis=1)
            nearest[start : start + len(d)] = np.asarray(core)[d.argmin(axis=1)]
        core_dist[core], nearest[core] = 0.0, core
        return core_dist, nearest


def neighbour_stage_bytes(n: int, dim: int) -> int:
    """Peak bytes of the neighbour and cover stage for n rows of ``dim`` features (beyond the features)."""
    if n <= EXACT_MAX:
        return 8 * n * n + 2 * 8 * 512 * n + 8 * n * dim
    return (
        4 * MAX_CANDIDATES * dim
        + 3 * 4 * MAX_CANDIDATES * CHUNK
        + 4 * n * dim
        + 3 * 4 * 2 * REFINE * n
        + 16 * CHUNK * dim
    )

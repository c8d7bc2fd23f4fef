"""The evolutionary algorithm of the paper (Alg. 1) over the single-sample score matrix.

Population of P random M-subsets; each generation keeps the fitter half and gives each of the
fitter P/2 survivors one child, by crossover (M distinct ids drawn from the union with a random
partner) or mutation (one member replaced by a non-member). Survivors keep their fitness, so only
children are evaluated. Random numbers come from numpy's seeded Generator, vectorised over the
population; children are built and evaluated by compiled loops (``kernels``).

Fitness ``paper`` is Eq. 3, f(S) = sum_k max_{j in S} y_k s(j, k) with y = -1 (normal) / +1
(anomalous). It is evaluated on per-column ranks stored as uint16 (the max over a subset of ranks
picks the same row as the max over values, at a quarter of the bytes) and summed exactly in fixed
point. Fitness ``balanced`` is Eq. 3 with each val image weighted by the inverse size of its class
(normal or anomalous), f(S) = sum_k max_{j in S} y_k s(j, k) / n_{y_k}: both classes count
equally however many anomalies the val set has (the paper's protocol has 9 per normal image,
and the unweighted sum is then dominated by the anomalies). The weights are positive per
column, so the ranks, and the exact fixed-point path, are those of ``paper``. Fitness ``auroc``
is the val AUROC of the scores aggregated as the min over the subset (exact for a kNN detector
with k = 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from protolib.checks import check_finite
from protolib.selection.base import SELECTORS, Selection, SelectionContext, Selector
from protolib.selection.kernels import (
    cross_rows,
    make_children,
    mutate_rows,
    rows_auroc_of_codes,
    subset_max_sum_blocked,
    subset_min_codes_blocked,
)


class RankTable:
    """Per-column dense ranks of a (K, V) matrix plus the sorted values to map ranks back (every
    fitness is built on one, so it is where the matrix is checked finite)."""

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        check_finite(values, "the single-sample score matrix")
        K, V = values.shape
        if np.iinfo(np.uint16).max < K:
            raise ValueError(f"at most {np.iinfo(np.uint16).max} candidates are supported, got {K}")
        order = np.argsort(values, axis=0, kind="stable")
        ranks = np.empty((K, V), dtype=np.uint16)
        ranks[order, np.arange(V)] = np.arange(K, dtype=np.uint16)[:, None]
        self.ranks = np.ascontiguousarray(ranks)
        # sorted values per column, laid out (V, K) so that value = table[k * K + rank]
        self.table = np.ascontiguousarray(np.take_along_axis(values, order, axis=0).T).ravel()
        self.K, self.V = K, V


class PaperFitness:
    """Eq. 3 of the paper, summed exactly in fixed point (see ``kernels``)."""

    def __init__(self, score_matrix: np.ndarray, val_labels: np.ndarray) -> None:
        values = np.asarray(score_matrix, dtype=np.float64) * self.column_weights(val_labels)[None, :]
        self.table = RankTable(values)
        # the largest power-of-two scale at which a sum of V values cannot overflow int64
        largest = float(np.abs(values).max()) * values.shape[1]
        self.exponent = 60 - int(np.ceil(np.log2(largest))) if largest > 0 else 0
        self.qtable = np.round(np.ldexp(self.table.table, self.exponent)).astype(np.int64)
        self._blocks: tuple[np.ndarray, np.ndarray] | None = None

    #: columns per block of ``subset_max_sum_blocked`` (a block's ranks and values stay in cache)
    BLOCK = 256

    def blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """``table.ranks`` and ``qtable`` cut into column blocks (built on first use)."""
        if self._blocks is None:
            self._blocks = column_blocks(self.table.ranks, self.qtable.reshape(self.table.V, self.table.K), self.BLOCK)
        return self._blocks

    @staticmethod
    def column_weights(val_labels: np.ndarray) -> np.ndarray:
        """y_k: -1 for a normal val image, +1 for an anomalous one."""
        return np.where(np.asarray(val_labels) > 0, 1.0, -1.0)

    def to_value(self, fixed: np.ndarray | int) -> np.ndarray | float:
        return np.ldexp(np.asarray(fixed, dtype=np.float64), -self.exponent)

    def __call__(self, population: np.ndarray) -> np.ndarray:
        return self.to_value(self.tracker(population).keys)

    def tracker(self, population: np.ndarray) -> PaperTracker:
        return PaperTracker(self, population)


class PaperTracker:
    """Eq. 3 of a population held in slots, as exact fixed-point keys."""

    def __init__(self, fitness: PaperFitness, population: np.ndarray) -> None:
        self.fitness = fitness
        self.keys = np.empty(len(population), dtype=np.int64)
        self.update(population, np.arange(len(population)))

    def update(self, population: np.ndarray, slots: np.ndarray) -> None:
        """Evaluate the subsets in ``slots`` into ``keys``."""
        f = self.fitness
        population = np.ascontiguousarray(population, dtype=np.int64)
        slots = np.asarray(slots, dtype=np.int64)
        subset_max_sum_blocked(*f.blocks(), population, slots, self.keys)

    def value(self, slot: int) -> float:
        return float(self.fitness.to_value(self.keys[slot]))


class BalancedFitness(PaperFitness):
    """Class-balanced Eq. 3: column k weighted by y_k / (number of val images of its class)."""

    @staticmethod
    def column_weights(val_labels: np.ndarray) -> np.ndarray:
        anomalous = np.asarray(val_labels) > 0
        n_anomalous = int(anomalous.sum())
        n_normal = len(anomalous) - n_anomalous
        if n_anomalous == 0 or n_normal == 0:
            raise ValueError("balanced fitness needs normal and anomalous val images")
        return np.where(anomalous, 1.0 / n_anomalous, -1.0 / n_normal)


class AurocFitness:
    """Val AUROC of min-aggregated single-sample scores.

    Evaluated on integer codes: every value of the matrix is replaced by its dense rank among all
    K x V values (equal values, equal codes), so the min over a subset and every comparison the
    AUROC makes are those of the values; the kernel then counts pairs exactly
    (``kernels.rows_auroc_of_codes``) and gives the rank formula's value to the last bit (tested
    against :func:`protolib.metrics.rowwise_auroc` of the min-aggregated values)."""

    BLOCK = PaperFitness.BLOCK

    def __init__(self, score_matrix: np.ndarray, val_labels: np.ndarray) -> None:
        labels = np.asarray(val_labels).astype(bool)  # as ``rowwise_auroc``, the definition
        self.n_pos, self.n_neg = int(labels.sum()), int((~labels).sum())
        if self.n_pos == 0 or self.n_neg == 0:
            raise ValueError("AUROC needs both normal and anomalous samples")
        # normal columns first, then anomalous (the AUROC is the same in any column order)
        values = np.asarray(score_matrix, dtype=np.float64)[:, np.argsort(labels, kind="stable")]
        table = RankTable(values)
        distinct, codes = np.unique(table.table, return_inverse=True)
        self.universe = len(distinct)
        code_type = np.int32 if self.universe <= np.iinfo(np.int32).max else np.int64
        self.code_blocks = column_blocks(table.ranks, codes.astype(code_type).reshape(table.V, table.K), self.BLOCK)

    def __call__(self, population: np.ndarray) -> np.ndarray:
        codes = subset_min_codes_blocked(*self.code_blocks, np.ascontiguousarray(population, dtype=np.int64))
        return rows_auroc_of_codes(codes, self.n_neg, self.n_pos, self.universe)


def column_blocks(ranks: np.ndarray, by_rank: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ranks (K, V) and a per-column table by rank (V, K) cut into blocks of ``block``
    columns: (n_blocks, K, block) and (n_blocks, block, K), contiguous. A block's ranks and table
    stay in cache while every subset reads them (the whole table is K x V: 36 MB of int64 at
    K = 300, V = 15 000). Padding columns have rank 0 and table entries 0."""
    K, V = ranks.shape
    n_blocks = -(-V // block)
    padded_ranks = np.zeros((K, n_blocks * block), dtype=ranks.dtype)
    padded_ranks[:, :V] = ranks
    padded_table = np.zeros((n_blocks * block, K), dtype=by_rank.dtype)
    padded_table[:V] = by_rank
    return (
        np.ascontiguousarray(padded_ranks.reshape(K, n_blocks, block).transpose(1, 0, 2)),
        padded_table.reshape(n_blocks, block, K),
    )


FITNESS = {"paper": PaperFitness, "balanced": BalancedFitness, "auroc": AurocFitness}


def random_population(n: int, K: int, M: int, rng: np.random.Generator) -> np.ndarray:
    """n random M-subsets of range(K), each sorted."""
    return np.sort(np.argsort(rng.random((n, K)), axis=1)[:, :M], axis=1)


def crossover(first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """M distinct members drawn at random from the union of each pair of (sorted) parents."""
    first, second = (np.ascontiguousarray(a, dtype=np.int64) for a in (first, second))
    return cross_rows(first, second, rng.random((len(first), 2 * first.shape[1])))


def mutate(population: np.ndarray, K: int, rng: np.random.Generator) -> np.ndarray:
    """Replace one random member of each (sorted) subset by a random non-member."""
    n, M = population.shape
    positions, draws = rng.integers(0, M, size=n), rng.integers(0, K - M, size=n)
    return mutate_rows(np.ascontiguousarray(population, dtype=np.int64), positions, draws)


class CallableTracker:
    """Any fitness callable over a population held in slots."""

    def __init__(self, fitness: Any, population: np.ndarray) -> None:
        self.fitness = fitness
        self.keys = np.asarray(fitness(population), dtype=np.float64)

    def update(self, population: np.ndarray, slots: np.ndarray) -> None:
        self.keys[slots] = self.fitness(population[slots])

    def value(self, slot: int) -> float:
        return float(self.keys[slot])


class SubsetMemo:
    """The fitness of subsets seen before. Children often repeat a subset (always at small M,
    where there are few, and once the population converges), and a remembered value is the value
    an evaluation gives, so the run is identical with or without the memo.

    A subset's key is a pair of 64-bit Zobrist hashes (XOR of one random word per member; 128
    bits, so a collision among the ~10^5 subsets of a run has probability ~10^-28). Hashing and
    looking up cost ~0.5 us per child, about what evaluating one costs at M = 25, |val| = 2000:
    while fewer than ``min_hit_rate`` of the children are repeats, the memo rests and is
    tried again every ``probe_every`` generations."""

    def __init__(self, K: int, min_hit_rate: float = 0.1, probe_every: int = 20) -> None:
        words = np.random.default_rng(0x5EED).integers(0, 2**62, size=(2, K), dtype=np.int64)
        self.words = words.astype(np.uint64) * np.uint64(2) + np.uint64(1)
        self.seen: dict[tuple[int, int], Any] = {}
        self.min_hit_rate = min_hit_rate
        self.probe_every = probe_every
        self.resting = 0  # generations left without the memo

    def keys(self, rows: np.ndarray) -> list[tuple[int, int]]:
        first = np.bitwise_xor.reduce(self.words[0][rows], axis=1)
        second = np.bitwise_xor.reduce(self.words[1][rows], axis=1)
        return list(zip(first.tolist(), second.tolist()))

    def evaluate(self, tracker: Any, population: np.ndarray, child_slots: np.ndarray) -> None:
        """Fill ``tracker.keys`` at ``child_slots``: remembered values, else evaluated."""
        if self.resting:
            self.resting -= 1
            tracker.update(population, child_slots)
            return
        keys = self.keys(population[child_slots])
        known = [self.seen.get(key) for key in keys]
        new = np.array([i for i, value in enumerate(known) if value is None], dtype=np.int64)
        old = np.array([i for i, value in enumerate(known) if value is not None], dtype=np.int64)
        if len(old):
            tracker.keys[child_slots[old]] = [known[i] for i in old]
        if len(new):
            tracker.update(population, child_slots[new])
            self.seen.update(zip((keys[i] for i in new), tracker.keys[child_slots[new]].tolist()))
        if len(old) < self.min_hit_rate * len(keys):
            self.resting = self.probe_every

    def remember(self, tracker: Any, population: np.ndarray) -> None:
        self.seen.update(zip(self.keys(population), tracker.keys.tolist()))


def evolve(
    fitness: Any,
    K: int,
    M: int,
    population: int,
    generations: int,
    rng: np.random.Generator,
    crossover_probability: float = 0.5,
    progress: bool | None = False,
) -> tuple[np.ndarray, float, list[float]]:
    """Run Alg. 1; return the best subset (row indices), its fitness and the best per generation.

    The population lives in P fixed slots: survivors stay where they are and each generation's
    children are written into the slots of the dropped half, so nothing is copied."""
    if M > K:
        raise ValueError(f"M = {M} is larger than the {K} candidates")
    if M == K:
        full = np.arange(K)[None, :]
        value = float(fitness(full)[0])
        return full[0], value, [value]
    pop = np.ascontiguousarray(random_population(population, K, M, rng), dtype=np.int64)
    tracker = fitness.tracker(pop) if hasattr(fitness, "tracker") else CallableTracker(fitness, pop)
    memo = SubsetMemo(K)
    memo.remember(tracker, pop)
    history = [tracker.value(int(np.argmax(tracker.keys)))]
    n_keep = population - population // 2
    n_children = population // 2
    disable = None if progress is None else not progress  # None: a bar only on a terminal
    for _ in tqdm(range(generations), desc=f"evolutionary M={M}", disable=disable, leave=False):
        order = np.argsort(-tracker.keys, kind="stable")
        parents, free = order[:n_children], order[n_keep:]
        partner = (np.arange(n_children) + rng.integers(1, max(n_keep, 2), size=n_children)) % n_keep
        use_crossover = rng.random(n_children) < crossover_probability
        positions, draws = rng.integers(0, M, size=n_children), rng.integers(0, K - M, size=n_children)
        uniform = rng.random((int(use_crossover.sum()), 2 * M))
        make_children(pop, parents, order[partner], free, use_crossover, positions, draws, uniform)
        memo.evaluate(tracker, pop, free)
        history.append(tracker.value(int(np.argmax(tracker.keys))))
    best = int(np.argmax(tracker.keys))
    return pop[best].copy(), tracker.value(best), history


@SELECTORS.register("evolutionary")
class EvolutionarySelector(Selector):
    name = "evolutionary"

    def __init__(
        self,
        *,
        population: int = 1000,
        generations: int = 500,
        fitness: str = "paper",
        crossover_probability: float = 0.5,
    ) -> None:
        self.population = population
        self.generations = generations
        self.fitness_name = fitness
        self.crossover_probability = crossover_probability
        self._cached: tuple[Any, ...] | None = None  # (matrix ids, fitness, the arrays kept alive)
        #: the generations' bar: True always, False never, None only on a terminal (``rank -q``: False)
        self.progress: bool | None = True

    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection:
        self._check_size(context, M)
        if context.score_matrix is None or context.val_labels is None:
            raise ValueError("evolutionary needs the single-sample score matrix and val labels")
        fitness = self._fitness(context)
        rows, value, history = evolve(
            fitness,
            K=len(context.candidates),
            M=M,
            population=self.population,
            generations=self.generations,
            rng=rng,
            crossover_probability=self.crossover_probability,
            progress=self.progress,
        )
        return Selection(
            ids=[int(i) for i in context.candidates[rows]],
            fitness=value,
            info={
                "fitness": self.fitness_name,
                "population": self.population,
                "generations": self.generations,
                "best_per_generation": history,
            },
        )

    def _fitness(self, context: SelectionContext) -> Any:
        """The fitness of this context's matrix, built once for every M (its rank table and
        blocks take ~1.5 s at K = 300, |val| = 15 000)."""
        key = (id(context.score_matrix), id(context.val_labels))
        if self._cached is None or self._cached[0] != key:
            self._cached = (
                key,
                FITNESS[self.fitness_name](context.score_matrix, context.val_labels),
                context.score_matrix,
                context.val_labels,
            )  # kept alive: ids stay unique
        return self._cached[1]

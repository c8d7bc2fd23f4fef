"""The evolutionary algorithm of the paper (Alg. 1) over the single-sample score matrix.

Population of P random M-subsets; each generation keeps the fitter half and gives every
survivor one child, by crossover (M distinct ids drawn from the union with a random partner) or
mutation (one member replaced by a non-member). Survivors keep their fitness, so only children
are evaluated. Everything is vectorised over the population; the fitness loops are compiled
(``kernels``).

Fitness ``paper`` is Eq. 3, f(S) = sum_k max_{j in S} y_k s(j, k) with y = -1 (normal) / +1
(anomalous). It is evaluated on per-column ranks stored as uint16: the max over a subset of
ranks picks the same row as the max over values, a row is a quarter of the bytes of float64,
and a lookup table returns the exact value. Fitness ``auroc`` is the val AUROC of the scores
aggregated as the min over the subset (exact for a kNN detector with k = 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from protolib.metrics import rowwise_auroc
from protolib.selection.base import SELECTORS, Selection, SelectionContext, Selector
from protolib.selection.kernels import subset_max_sum, subset_max_sum_values, subset_min_values


class RankTable:
    """Per-column dense ranks of a (K, V) matrix plus the sorted values to map ranks back."""

    def __init__(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        K, V = values.shape
        if K > np.iinfo(np.uint16).max:
            raise ValueError(f"at most {np.iinfo(np.uint16).max} candidates are supported, got {K}")
        order = np.argsort(values, axis=0, kind="stable")
        ranks = np.empty((K, V), dtype=np.uint16)
        ranks[order, np.arange(V)] = np.arange(K, dtype=np.uint16)[:, None]
        self.ranks = np.ascontiguousarray(ranks)
        # sorted values per column, laid out (V, K) so that value = table[k * K + rank]
        self.table = np.ascontiguousarray(np.take_along_axis(values, order, axis=0).T).ravel()
        self.K, self.V = K, V

    def max_sum(self, population: np.ndarray) -> np.ndarray:
        """sum over columns of the max over each subset's rows."""
        return subset_max_sum(self.ranks, self.table, np.ascontiguousarray(population, dtype=np.int64))

    def min_values(self, population: np.ndarray) -> np.ndarray:
        """(n, V): the min over each subset's rows, per column."""
        return subset_min_values(self.ranks, self.table, np.ascontiguousarray(population, dtype=np.int64))


class PaperFitness:
    """Eq. 3 of the paper."""

    #: below this subset size the plain values are summed directly (measured crossover)
    DIRECT_BELOW_M = 8

    def __init__(self, score_matrix: np.ndarray, val_labels: np.ndarray) -> None:
        y = np.where(np.asarray(val_labels) > 0, 1.0, -1.0)
        self.values = np.ascontiguousarray(np.asarray(score_matrix, dtype=np.float64) * y[None, :])
        self.table = RankTable(self.values)

    def __call__(self, population: np.ndarray) -> np.ndarray:
        if population.shape[1] < self.DIRECT_BELOW_M:
            return subset_max_sum_values(self.values, np.ascontiguousarray(population, dtype=np.int64))
        return self.table.max_sum(population)


class AurocFitness:
    """Val AUROC of min-aggregated single-sample scores."""

    def __init__(self, score_matrix: np.ndarray, val_labels: np.ndarray) -> None:
        self.table = RankTable(score_matrix)
        self.labels = np.asarray(val_labels)

    def __call__(self, population: np.ndarray) -> np.ndarray:
        return rowwise_auroc(self.table.min_values(population), self.labels)


FITNESS = {"paper": PaperFitness, "auroc": AurocFitness}


def random_population(n: int, K: int, M: int, rng: np.random.Generator) -> np.ndarray:
    """n random M-subsets of range(K), each sorted."""
    return np.sort(np.argsort(rng.random((n, K)), axis=1)[:, :M], axis=1)


def crossover(first: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """M distinct members drawn at random from the union of each pair of parents."""
    M = first.shape[1]
    both = np.sort(np.concatenate([first, second], axis=1), axis=1)
    priority = rng.random(both.shape)
    priority[:, 1:][both[:, 1:] == both[:, :-1]] = 2.0  # duplicates go last, never picked
    pick = np.argsort(priority, axis=1, kind="stable")[:, :M]
    return np.sort(np.take_along_axis(both, pick, axis=1), axis=1)


def mutate(population: np.ndarray, K: int, rng: np.random.Generator) -> np.ndarray:
    """Replace one random member of each (sorted) subset by a random non-member."""
    n, M = population.shape
    # the r-th smallest non-member: step over every member at or below it (members sorted)
    new = rng.integers(0, K - M, size=n)
    for m in range(M):
        new += population[:, m] <= new
    child = population.copy()
    child[np.arange(n), rng.integers(0, M, size=n)] = new
    return np.sort(child, axis=1)


class FitnessMemo:
    """Remembers the fitness of every subset seen: children often repeat a subset (always at small
    M, where there are few), and only new ones are evaluated. The values are the same, so the
    run is identical with or without it."""

    def __init__(self, fitness: Any) -> None:
        self.fitness = fitness
        self.seen: dict[bytes, float] = {}

    def __call__(self, population: np.ndarray) -> np.ndarray:
        keys = [row.tobytes() for row in np.ascontiguousarray(population, dtype=np.int64)]
        new = {}
        for key, row in zip(keys, population):
            if key not in self.seen and key not in new:
                new[key] = row
        if new:
            values = self.fitness(np.stack(list(new.values())))
            self.seen.update(zip(new.keys(), (float(v) for v in values)))
        return np.array([self.seen[key] for key in keys], dtype=np.float64)


def evolve(
    fitness: Any,
    K: int,
    M: int,
    population: int,
    generations: int,
    rng: np.random.Generator,
    crossover_probability: float = 0.5,
    progress: bool = False,
) -> tuple[np.ndarray, float, list[float]]:
    """Run Alg. 1; return the best subset (row indices), its fitness and the best per generation."""
    if M > K:
        raise ValueError(f"M = {M} is larger than the {K} candidates")
    if M == K:
        full = np.arange(K)[None, :]
        value = float(fitness(full)[0])
        return full[0], value, [value]
    memo = FitnessMemo(fitness)
    pop = random_population(population, K, M, rng)
    fit = memo(pop)
    history = [float(fit.max())]
    n_keep = population - population // 2
    for _ in tqdm(range(generations), desc=f"evolutionary M={M}", disable=not progress, leave=False):
        keep = np.argsort(-fit, kind="stable")[:n_keep]
        parents, parent_fit = pop[keep], fit[keep]
        partner = (np.arange(n_keep) + rng.integers(1, max(n_keep, 2), size=n_keep)) % n_keep
        use_crossover = rng.random(n_keep) < crossover_probability
        children = mutate(parents, K, rng)
        if use_crossover.any():
            children[use_crossover] = crossover(parents[use_crossover], parents[partner[use_crossover]], rng)
        pop = np.concatenate([parents, children])[:population]
        fit = np.concatenate([parent_fit, memo(children)])[:population]
        history.append(float(fit.max()))
    best = int(np.argmax(fit))
    return pop[best], float(fit[best]), history


class EvolutionarySelector(Selector):
    name = "evolutionary"

    def __init__(
        self,
        population: int = 1000,
        generations: int = 500,
        fitness: str = "paper",
        crossover_probability: float = 0.5,
    ) -> None:
        self.population = population
        self.generations = generations
        self.fitness_name = fitness
        self.crossover_probability = crossover_probability

    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection:
        self._check_size(context, M)
        if context.score_matrix is None or context.val_labels is None:
            raise ValueError("evolutionary needs the single-sample score matrix and val labels")
        fitness = FITNESS[self.fitness_name](context.score_matrix, context.val_labels)
        rows, value, history = evolve(
            fitness,
            K=len(context.candidates),
            M=M,
            population=self.population,
            generations=self.generations,
            rng=rng,
            crossover_probability=self.crossover_probability,
            progress=True,
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


@SELECTORS.register("evolutionary")
def _make(settings: dict[str, Any]) -> EvolutionarySelector:
    return EvolutionarySelector(
        population=settings.get("population", 1000),
        generations=settings.get("generations", 500),
        fitness=settings.get("fitness", "paper"),
        crossover_probability=settings.get("crossover_probability", 0.5),
    )

"""Benchmark: the evolutionary algorithm at the paper's settings against a plain Python loop.

P = 1000, G = 500, K = 300 candidates, 2000 val samples, M = 25 (the spine's target: <= 3 s on
2 CPU cores and >= 50x the reference). The reference is the textbook implementation: one
individual at a time, Python sets for crossover and mutation, numpy for each fitness. It runs
a few generations in the same process and is compared per generation (it would take minutes
at G = 500); both are also checked to compute the same fitness on the same subsets. Each is
timed as the best of a few runs, interleaved, so that a busy neighbour on a shared machine
skews neither.

    python benchmarks/bench_evolutionary.py [--generations 500] [--reference-generations 20]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from protolib.selection.evolutionary import PaperFitness, evolve


def reference_evolve(scores: np.ndarray, labels: np.ndarray, M: int, P: int, G: int, seed: int) -> float:
    """Alg. 1 written plainly, per individual; returns the best fitness."""
    rnd = random.Random(seed)
    y = np.where(labels > 0, 1.0, -1.0)
    signed = scores * y[None, :]
    K = len(scores)

    def fitness(subset: list[int]) -> float:
        return float(signed[subset].max(axis=0).sum())

    population = [rnd.sample(range(K), M) for _ in range(P)]
    fit = [fitness(s) for s in population]
    for _ in range(G):
        order = sorted(range(len(population)), key=lambda i: -fit[i])[: P - P // 2]
        parents = [population[i] for i in order]
        parent_fit = [fit[i] for i in order]
        children = []
        for ind in parents:
            if rnd.random() < 0.5:
                other = rnd.choice(parents)
                children.append(rnd.sample(sorted(set(ind) | set(other)), M))
            else:
                child = list(ind)
                child[rnd.randrange(M)] = rnd.choice([j for j in range(K) if j not in ind])
                children.append(child)
        population = (parents + children)[:P]
        fit = (parent_fit + [fitness(c) for c in children])[:P]
    return max(fit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--val", type=int, default=2000)
    parser.add_argument("--M", type=int, default=25)
    parser.add_argument("--population", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=500)
    parser.add_argument("--reference-generations", type=int, default=10)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="best of this many runs of each (a shared machine's noise only ever slows a run down)",
    )
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    scores = rng.random((args.candidates, args.val))
    labels = (rng.random(args.val) < 0.5).astype(int)
    fitness = PaperFitness(scores, labels)

    # same fitness on the same subsets
    subsets = [rng.choice(args.candidates, args.M, replace=False) for _ in range(50)]
    y = np.where(labels > 0, 1.0, -1.0)
    plain = np.array([(scores[s] * y).max(axis=0).sum() for s in subsets])
    assert np.allclose(fitness(np.sort(np.stack(subsets), axis=1)), plain, rtol=1e-12)

    evolve(fitness, args.candidates, args.M, 20, 2, np.random.default_rng(0))  # compile the kernels once
    fast = slow = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        _, best, _ = evolve(
            fitness, args.candidates, args.M, args.population, args.generations, np.random.default_rng(1)
        )
        fast = min(fast, time.perf_counter() - start)
        start = time.perf_counter()
        reference_evolve(scores, labels, args.M, args.population, args.reference_generations, seed=1)
        slow = min(slow, time.perf_counter() - start)

    fast_per_gen = fast / args.generations
    slow_per_gen = slow / args.reference_generations
    print(f"evolutionary  P={args.population} G={args.generations} K={args.candidates} V={args.val} M={args.M}")
    print(
        f"  protolib (vectorised + compiled): {fast:8.2f} s   ({fast_per_gen * 1e3:.2f} ms/generation), "
        f"best fitness {best:.3f}"
    )
    print(
        f"  plain per-individual loop:        {slow_per_gen * args.generations:8.2f} s   "
        f"({slow_per_gen * 1e3:.2f} ms/generation, measured over {args.reference_generations} generations)"
    )
    print(f"  speed-up: {slow_per_gen / fast_per_gen:.1f}x   (best of {args.repeats} runs each)")


if __name__ == "__main__":
    main()

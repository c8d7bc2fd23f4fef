"""Benchmark: Eq. 3 of mutated children from their parents' column maxima, against the full
evaluation the evolutionary algorithm uses (a rejected alternative, measured).

A mutated child differs from its parent in one member, so per val column its maximum is
max(parent's maximum without the removed member, the new member's rank): given each parent's
top-two ranks and the position of the top one, only the columns whose maximum changes (about
2/M of them) need a table look-up, and the child's sum is the parent's plus those differences
(exact integers, so the same sum). The full evaluation (``kernels.subset_max_sum_blocked``)
reads M rank rows and looks up every column. This script times both on the same 500 mutated
children of 500 parents, checks that they give the same integers, and prints the ratio; the
parents' top-two maxima, which the incremental path needs first, are timed separately. Each is
the best of a few interleaved runs, one thread.

    python benchmarks/bench_incremental_eq3.py [--matrix results/.../matrix.npz] [--M 1 10 25]

Without ``--matrix`` the (300, 15 000) single-sample matrix is random with the Fashion-MNIST
study's labels (1 500 normal, 13 500 anomalous val images); with it, a ``merge_scores`` file.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np
from numba import njit, prange

from protolib.selection.evolutionary import PaperFitness, random_population
from protolib.selection.kernels import mutate_rows, subset_max_sum_blocked


@njit(parallel=True, cache=True)
def top_two_blocked(rank_blocks, population, slots, top1, top2, arg):  # type: ignore[no-untyped-def]
    """Per column block and slot: the largest rank over the subset, its member's position, and
    the second largest (0 for M = 1: ranks are >= 0, so max(0, r) = r)."""
    n_blocks, _, B = rank_blocks.shape
    M = population.shape[1]
    for b in prange(n_blocks):
        ranks = rank_blocks[b]
        for j in range(slots.shape[0]):
            s = slots[j]
            members = population[s]
            t1, t2, a = top1[b, s], top2[b, s], arg[b, s]
            t1[:] = ranks[members[0]]
            t2[:] = 0
            a[:] = 0
            for m in range(1, M):
                row = ranks[members[m]]
                for k in range(B):
                    r, old = row[k], t1[k]
                    t2[k] = max(t2[k], min(r, old))
                    a[k] = np.uint8(m) if r > old else a[k]
                    t1[k] = max(old, r)


@njit(parallel=True, cache=True)
def mutated_sums_blocked(rank_blocks, value_blocks, top1, top2, arg, parent_slots, positions, added, out):  # type: ignore[no-untyped-def]
    """Each child's Eq. 3 minus its parent's: look-ups only where the column maximum changes
    (those columns are first gathered into a list without a branch, then looked up)."""
    n_blocks, _, B = rank_blocks.shape
    n = parent_slots.shape[0]
    partial = np.zeros((n_blocks, n), dtype=np.int64)
    for b in prange(n_blocks):
        ranks, values = rank_blocks[b], value_blocks[b]
        new = np.empty(B, dtype=np.uint16)
        changed = np.empty(B, dtype=np.int64)
        for j in range(n):
            p, position = parent_slots[j], np.uint8(positions[j])
            t1, t2, a, new_row = top1[b, p], top2[b, p], arg[b, p], ranks[added[j]]
            for k in range(B):
                new[k] = max(t2[k] if a[k] == position else t1[k], new_row[k])
            count = 0
            for k in range(B):
                changed[count] = k
                count += new[k] != t1[k]
            total = 0
            for i in range(count):
                k = changed[i]
                total += values[k, new[k]] - values[k, t1[k]]
            partial[b, j] = total
    for j in range(n):
        out[j] = partial[:, j].sum()


def best_of(repeats: int, *calls):  # type: ignore[no-untyped-def]
    """Best seconds of each call over ``repeats`` interleaved rounds."""
    best = [float("inf")] * len(calls)
    for _ in range(repeats):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matrix", help="a merge_scores file (scores, val_labels)")
    parser.add_argument("--M", type=int, nargs="+", default=[1, 10, 25])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    if args.matrix:
        data = np.load(args.matrix)
        scores, labels = data["scores"], data["val_labels"]
    else:
        labels = np.r_[np.zeros(1500, int), np.ones(13500, int)]
        scores = rng.random((300, len(labels))) + 0.5 * labels[None, :]
    fitness = PaperFitness(scores, labels)
    rank_blocks, value_blocks = fitness.blocks()
    n_blocks, K, B = rank_blocks.shape
    P, n = 1000, 500
    print(f"K = {K}, |val| = {len(labels)}, {n} mutated children of {n} parents, one thread")
    print(f"{'M':>3} {'full ms':>9} {'incremental ms':>15} {'ratio':>6} {'parents top-two ms':>19}")
    for M in args.M:
        population = np.ascontiguousarray(random_population(P, K, M, rng), dtype=np.int64)
        parents, children = np.arange(n), np.arange(n, 2 * n)
        positions, draws = rng.integers(0, M, n), rng.integers(0, K - M, n)
        population[children] = mutate_rows(population[parents], positions, draws)
        added = np.array([np.setdiff1d(c, p)[0] for c, p in zip(population[children], population[parents])])
        keys = np.empty(P, np.int64)
        subset_max_sum_blocked(rank_blocks, value_blocks, population, parents, keys)
        top1 = np.empty((n_blocks, P, B), np.uint16)
        top2, arg = np.empty_like(top1), np.empty((n_blocks, P, B), np.uint8)
        delta = np.empty(n, np.int64)
        top_two_blocked(rank_blocks, population, parents, top1, top2, arg)  # before any look-up
        full, incremental, top_two = best_of(
            args.repeats,
            lambda: subset_max_sum_blocked(rank_blocks, value_blocks, population, children, keys),
            lambda: mutated_sums_blocked(rank_blocks, value_blocks, top1, top2, arg, parents, positions, added, delta),
            lambda: top_two_blocked(rank_blocks, population, parents, top1, top2, arg),
        )
        if not np.array_equal(keys[parents] + delta, keys[children]):
            raise SystemExit(f"M = {M}: the incremental sums differ from the full evaluation")
        print(f"{M:>3} {full * 1e3:>9.1f} {incremental * 1e3:>15.1f} {incremental / full:>6.2f} {top_two * 1e3:>19.1f}")


if __name__ == "__main__":
    main()

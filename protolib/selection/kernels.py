"""Compiled inner loops of the evolutionary algorithm (numba).

The fitness kernels work on per-column ranks (uint16) of the (K, V) single-sample matrix: the
extreme rank over a subset's rows names the same row as the extreme value, a row of ranks is a
quarter of the bytes of float64, and ``table[k * K + rank]`` gives back the value.

Eq. 3 is summed in fixed point (int64, one power-of-two scale for the whole matrix): integer sums
are exact and independent of their order, so runs are deterministic on any number of threads.

Children are built serially from random numbers drawn by the caller (numpy's seeded Generator),
so the stream of random numbers, and the run, does not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# ---------------------------------------------------------------------------------------------
# children: mutation and crossover


@njit(cache=True)
def _mutated(parent: np.ndarray, position: int, draw: int, child: np.ndarray) -> None:
    """``parent`` (sorted) with the member at ``position`` replaced by its ``draw``-th smallest
    non-member, written sorted into ``child``."""
    new = draw
    for member in parent:  # step over every member at or below the candidate (members sorted)
        if member <= new:
            new += 1
    n = 0
    placed = False
    for m in range(parent.shape[0]):
        if m == position:
            continue
        if not placed and new < parent[m]:
            child[n] = new
            n += 1
            placed = True
        child[n] = parent[m]
        n += 1
    if not placed:
        child[n] = new


@njit(cache=True)
def _crossed(first: np.ndarray, second: np.ndarray, uniform: np.ndarray, child: np.ndarray) -> None:
    """M distinct members drawn uniformly from the union of two sorted parents, written sorted
    into ``child``: selection sampling (Knuth's Algorithm S) over the merged union, one uniform
    number per member of the union."""
    M = first.shape[0]
    union = np.empty(2 * M, dtype=first.dtype)
    i = j = n = 0
    while i < M or j < M:
        if j == M or (i < M and first[i] < second[j]):
            union[n] = first[i]
            i += 1
        elif i == M or second[j] < first[i]:
            union[n] = second[j]
            j += 1
        else:  # in both parents: once
            union[n] = first[i]
            i += 1
            j += 1
        n += 1
    chosen = 0
    for t in range(n):
        if (n - t) * uniform[t] < M - chosen:
            child[chosen] = union[t]
            chosen += 1
            if chosen == M:
                break


@njit(cache=True)
def mutate_rows(parents: np.ndarray, positions: np.ndarray, draws: np.ndarray) -> np.ndarray:
    out = np.empty_like(parents)
    for i in range(parents.shape[0]):
        _mutated(parents[i], positions[i], draws[i], out[i])
    return out


@njit(cache=True)
def cross_rows(first: np.ndarray, second: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    out = np.empty_like(first)
    for i in range(first.shape[0]):
        _crossed(first[i], second[i], uniform[i], out[i])
    return out


@njit(cache=True)
def make_children(
    population: np.ndarray,
    parent_slots: np.ndarray,
    partner_slots: np.ndarray,
    child_slots: np.ndarray,
    use_crossover: np.ndarray,
    positions: np.ndarray,
    draws: np.ndarray,
    uniform: np.ndarray,
) -> None:
    """Write each parent's child into its free slot of ``population`` (in place).

    ``uniform`` has one row per crossover child, in order."""
    c = 0
    for i in range(child_slots.shape[0]):
        parent = population[parent_slots[i]]
        if use_crossover[i]:
            _crossed(parent, population[partner_slots[i]], uniform[c], population[child_slots[i]])
            c += 1
        else:
            _mutated(parent, positions[i], draws[i], population[child_slots[i]])


# ---------------------------------------------------------------------------------------------
# Eq. 3: sum over val columns of the max over the subset


@njit(parallel=True, cache=True)
def subset_max_sum(
    ranks: np.ndarray, qtable: np.ndarray, population: np.ndarray, slots: np.ndarray, fitness: np.ndarray
) -> None:
    """Fixed-point Eq. 3 of the subsets in ``slots`` of ``population``, written to ``fitness``."""
    K, V = ranks.shape
    M = population.shape[1]
    for j in prange(slots.shape[0]):
        members = population[slots[j]]
        acc = ranks[members[0]].copy()  # a fresh buffer: the compiler can vectorise the max
        for m in range(1, M):
            row = ranks[members[m]]
            for k in range(V):
                acc[k] = max(acc[k], row[k])
        total = 0
        for k in range(V):
            total += qtable[k * K + acc[k]]
        fitness[slots[j]] = total


@njit(parallel=True, cache=True)
def subset_max_sum_blocked(
    rank_blocks: np.ndarray, value_blocks: np.ndarray, population: np.ndarray, slots: np.ndarray, fitness: np.ndarray
) -> None:
    """The same sums as ``subset_max_sum``, one block of B columns at a time for every child.

    ``rank_blocks`` (n_blocks, K, B) uint16 and ``value_blocks`` (n_blocks, B, K) int64 hold
    ``ranks`` and ``qtable`` cut into column blocks (padding columns: rank 0, value 0). A block
    (K x B ranks + B x K values: ~750 KB at K = 300, B = 256) stays in cache while all children
    read it, where the unblocked loop fetches each child's table entries from memory (the table
    is K x V int64: 36 MB at V = 15 000). Per-block partial sums are integers, so the total is
    the same integer in any order (deterministic on any number of threads)."""
    n_blocks, K, B = rank_blocks.shape
    n = slots.shape[0]
    M = population.shape[1]
    partial = np.zeros((n_blocks, n), dtype=np.int64)
    for b in prange(n_blocks):
        ranks = rank_blocks[b]
        values = value_blocks[b]
        acc = np.empty(B, dtype=np.uint16)
        for j in range(n):
            members = population[slots[j]]
            acc[:] = ranks[members[0]]
            for m in range(1, M):
                row = ranks[members[m]]
                for k in range(B):
                    acc[k] = max(acc[k], row[k])
            total = 0
            for k in range(B):
                total += values[k, acc[k]]
            partial[b, j] = total
    for j in range(n):
        total = 0
        for b in range(n_blocks):
            total += partial[b, j]
        fitness[slots[j]] = total


# ---------------------------------------------------------------------------------------------
# val AUROC of min-aggregated scores (fitness ``auroc``), on integer codes


@njit(parallel=True, cache=True)
def subset_min_codes_blocked(rank_blocks: np.ndarray, code_blocks: np.ndarray, population: np.ndarray) -> np.ndarray:
    """(n, n_blocks * B): per column, the code of the min over each subset's rows (the codes' type).

    ``rank_blocks`` (n_blocks, K, B) uint16 as in ``subset_max_sum_blocked``; ``code_blocks``
    (n_blocks, B, K) int32 (int64 past 2**31 distinct values): the code (global dense rank) of
    the value of each (column, rank)."""
    n_blocks, K, B = rank_blocks.shape
    n, M = population.shape
    out = np.empty((n, n_blocks * B), dtype=code_blocks.dtype)
    for b in prange(n_blocks):
        ranks = rank_blocks[b]
        codes = code_blocks[b]
        acc = np.empty(B, dtype=np.uint16)
        for j in range(n):
            acc[:] = ranks[population[j, 0]]
            for m in range(1, M):
                row = ranks[population[j, m]]
                for k in range(B):
                    acc[k] = min(acc[k], row[k])
            for k in range(B):
                out[j, b * B + k] = codes[k, acc[k]]
    return out


@njit(parallel=True, cache=True)
def rows_auroc_of_codes(codes: np.ndarray, n_neg: int, n_pos: int, universe: int) -> np.ndarray:
    """AUROC of each row of integer ``codes`` (higher = more anomalous) whose first ``n_neg``
    columns are normal and next ``n_pos`` anomalous: U / (n_pos n_neg), a tie counting one
    half, from 2U exact in int64 (so the one division is that of the rank formula).

    Per row the smaller class is placed in buckets of the code range (a counting sort) and each
    code of the other class is counted against the few entries of its bucket, not against a
    sort of all V codes."""
    n = codes.shape[0]
    large_is_positive = n_neg <= n_pos
    n_small = n_neg if large_is_positive else n_pos
    n_buckets = 1
    while n_buckets < 4 * n_small:
        n_buckets *= 2
    shift = 0  # buckets of 2**shift codes (a shift, not a division, per query)
    while (n_buckets << shift) < universe:
        shift += 1
    n_buckets = ((universe - 1) >> shift) + 1
    out = np.empty(n)
    for j in prange(n):
        negatives, positives = codes[j, :n_neg], codes[j, n_neg : n_neg + n_pos]
        small, large = (negatives, positives) if large_is_positive else (positives, negatives)
        start = np.zeros(n_buckets + 1, dtype=np.int32)  # bucket b holds s[start[b]:start[b + 1]]
        for v in small:
            start[(v >> shift) + 1] += 1
        for b in range(n_buckets):
            start[b + 1] += start[b]
        s = np.empty(n_small, dtype=small.dtype)  # the small class by bucket (a counting sort)
        fill = start[:-1].copy()
        for v in small:
            b = v >> shift
            s[fill[b]] = v
            fill[b] += 1
        twice_u = 0  # 2 * #(pairs anomalous > normal) + #(ties)
        for i in range(large.shape[0]):
            c = large[i]
            b = c >> shift
            below = start[b]
            equal = 0
            for t in range(start[b], start[b + 1]):
                if s[t] < c:
                    below += 1
                elif s[t] == c:
                    equal += 1
            above = n_small - below - equal
            twice_u += 2 * below + equal if large_is_positive else 2 * above + equal
        out[j] = twice_u / (2.0 * n_pos * n_neg)
    return out

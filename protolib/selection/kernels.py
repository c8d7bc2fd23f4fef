"""Compiled inner loops of the evolutionary fitness (numba, parallel over individuals).

Both work on per-column ranks (uint16) of the (K, V) single-sample matrix: the extreme rank over
a subset's rows names the same row as the extreme value, the rows are a quarter of the bytes of
float64, and ``table[k * K + rank]`` gives back the exact value. Results are deterministic: each
individual is reduced by one thread in a fixed order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def subset_max_sum(ranks: np.ndarray, table: np.ndarray, population: np.ndarray) -> np.ndarray:
    """sum_k max_{j in S} value(j, k) for every subset S (row of ``population``)."""
    n, M = population.shape
    K, V = ranks.shape
    out = np.empty(n)
    for i in prange(n):
        acc = ranks[population[i, 0]].copy()
        for m in range(1, M):
            row = ranks[population[i, m]]
            for k in range(V):
                acc[k] = max(acc[k], row[k])
        total = 0.0
        for k in range(V):
            total += table[k * K + acc[k]]
        out[i] = total
    return out


@njit(parallel=True, cache=True)
def subset_min_values(ranks: np.ndarray, table: np.ndarray, population: np.ndarray) -> np.ndarray:
    """(n, V): min_{j in S} value(j, k) for every subset S and column k."""
    n, M = population.shape
    K, V = ranks.shape
    out = np.empty((n, V))
    for i in prange(n):
        acc = ranks[population[i, 0]].copy()
        for m in range(1, M):
            row = ranks[population[i, m]]
            for k in range(V):
                acc[k] = min(acc[k], row[k])
        for k in range(V):
            out[i, k] = table[k * K + acc[k]]
    return out


@njit(parallel=True, cache=True)
def subset_max_sum_values(values: np.ndarray, population: np.ndarray) -> np.ndarray:
    """As :func:`subset_max_sum` on the values themselves: faster for small subsets, where the
    rank lookup costs more than the wider rows save."""
    n, M = population.shape
    V = values.shape[1]
    out = np.empty(n)
    for i in prange(n):
        acc = values[population[i, 0]].copy()
        for m in range(1, M):
            row = values[population[i, m]]
            for k in range(V):
                acc[k] = max(acc[k], row[k])
        total = 0.0
        for k in range(V):
            total += acc[k]
        out[i] = total
    return out

"""Exact nearest-neighbour search and distance matrices, chunked to bound memory: the one place
that chooses how.

``nearest_squared`` (the k smallest squared L2 distances per query) uses faiss-cpu's exact
``IndexFlatL2`` on the CPU, which ``benchmarks/bench_neighbours.py`` measured faster than the
torch code at the paper's sizes (PANDA 4000 x 2048 bank, PatchCore ~30 000 x 1024); a float64
Gram expansion for integer-valued features (the ``pixels`` backbone, 0..255), where faiss's
float32 arithmetic would round |x|^2 > 2^24 and break exact ties; and torch on a GPU (faiss-cpu
has none). ``squared_distances`` (whole matrices) is numpy on the CPU, torch on a GPU.

The Gram expansion |a|^2 + |b|^2 - 2 a.b runs in float64 (numpy on the CPU, so a CPU job never
imports torch for it; torch in the precision asked for on a GPU): for integer-valued features
every product and partial sum is then an integer below 2^53, so the result is the exact integer
squared distance whatever the summation order or library: ties stay ties, and AUROCs count them
as ties. faiss (float32) agrees with the float64 path to about 1e-6 relative (the benchmark
prints it; tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def squared_distances(a: np.ndarray, b: np.ndarray, device: str = "cpu", chunk: int = 4096) -> np.ndarray:
    """(len(a), len(b)) squared L2 distances, float64, computed chunk by chunk of ``a``: numpy on
    the CPU (no torch import in a CPU job), torch on a GPU."""
    if str(device) == "cpu":
        return _numpy_squared(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), chunk)
    # here: torch (~2 s) only on a GPU; CPU jobs use numpy
    import torch

    tb = torch.as_tensor(np.asarray(b, dtype=np.float64), device=device)
    nb = (tb * tb).sum(1)
    out = np.empty((len(a), len(b)), dtype=np.float64)
    for start in range(0, len(a), chunk):
        ta = torch.as_tensor(np.asarray(a[start : start + chunk], dtype=np.float64), device=device)
        d = (ta * ta).sum(1, keepdim=True) + nb.unsqueeze(0) - 2.0 * ta @ tb.T
        out[start : start + len(ta)] = d.clamp_min_(0.0).cpu().numpy()
    return out


def _numpy_squared(a: np.ndarray, b: np.ndarray, chunk: int, a_norms: np.ndarray | None = None) -> np.ndarray:
    """The Gram expansion in float64 numpy (for integer features: the exact integers, as torch's).
    ``a_norms``: the rows' squared norms of ``a`` when the caller has them (the same numbers)."""
    nb = (b * b).sum(1)
    out = np.empty((len(a), len(b)), dtype=np.float64)
    for start in range(0, len(a), chunk):
        block = a[start : start + chunk]
        na = (block * block).sum(1) if a_norms is None else a_norms[start : start + chunk]
        d = na[:, None] + nb[None, :] - 2.0 * (block @ b.T)
        out[start : start + len(block)] = np.maximum(d, 0.0, out=d)
    return out


def _integral(x: np.ndarray) -> bool:
    return bool(np.array_equal(x, np.rint(x)))


class Queries:
    """Query features prepared once for searches against many banks (a test set scored under
    each of 40 subsets): float64, whether they are integer-valued, their squared norms -- each
    worked out on first use, then kept. The caller must not change the features while this
    object is in use (``scoring.fit_and_score_each`` gathers a fresh array for it)."""

    def __init__(self, features: Any) -> None:
        self.x = np.asarray(_as_numpy(features), dtype=np.float64)
        self._integral: bool | None = None
        self._norms: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)

    @property
    def integral(self) -> bool:
        if self._integral is None:
            self._integral = _integral(self.x)
        return self._integral

    @property
    def norms(self) -> np.ndarray:
        if self._norms is None:
            self._norms = (self.x * self.x).sum(1)
        return self._norms


def uses_faiss(device: str, bank: np.ndarray, queries: np.ndarray | Queries) -> bool:
    """Whether ``nearest_squared`` searches with faiss (CPU, non-integer features)."""
    if str(device) != "cpu":
        return False
    integral = queries.integral if isinstance(queries, Queries) else _integral(_as_numpy(queries))
    return not (_integral(bank) and integral)


def nearest_squared(
    bank: Any, queries: Any, k: int, device: str = "cpu", dtype: Any = None, chunk: int = 2048, search: str = "auto"
) -> np.ndarray:
    """(len(queries), k) squared L2 distances from each query to its k nearest bank rows,
    ascending, float64 (k capped at |bank|). ``bank``/``queries``: arrays or tensors; ``dtype``:
    the torch path's precision (default float64); ``search``: ``auto`` (see the module), or
    ``torch`` (the benchmark's reference). ``queries`` may be :class:`Queries`, prepared once
    for many banks."""
    k = min(k, len(bank))
    if str(device) == "cpu" and search == "auto":
        bank = _as_numpy(bank)
        if uses_faiss(device, bank, queries):
            # here: faiss only for this CPU search
            import faiss

            index = faiss.IndexFlatL2(bank.shape[1])
            index.add(np.ascontiguousarray(bank, dtype=np.float32))
            raw = queries.x if isinstance(queries, Queries) else _as_numpy(queries)
            found, _ = index.search(np.ascontiguousarray(raw, dtype=np.float32), k)
            return np.maximum(found.astype(np.float64), 0.0)
        if dtype is None:  # integer features: exact integers, as torch's
            prepared = queries if isinstance(queries, Queries) else Queries(queries)
            return _numpy_nearest(np.asarray(bank, dtype=np.float64), prepared, k, chunk)
    if isinstance(queries, Queries):
        queries = queries.x
    # here: torch (~2 s) only off the numpy and faiss CPU paths above
    import torch

    dtype = dtype or torch.float64
    tb = torch.as_tensor(bank, device=device).to(dtype)
    nb = (tb * tb).sum(1)
    out = np.empty((len(queries), k), dtype=np.float64)
    for start in range(0, len(queries), chunk):
        tq = torch.as_tensor(queries[start : start + chunk], device=device).to(dtype)
        d = ((tq * tq).sum(1, keepdim=True) + nb.unsqueeze(0) - 2.0 * tq @ tb.T).clamp_min_(0.0)
        out[start : start + len(tq)] = torch.topk(d, k, dim=1, largest=False).values.double().cpu().numpy()
    return out


def _as_numpy(x: Any) -> np.ndarray:
    """An array, or a tensor's data (without importing torch for arrays)."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _numpy_nearest(bank: np.ndarray, queries: Queries, k: int, chunk: int) -> np.ndarray:
    """The k smallest squared distances per query, ascending (torch.topk's values)."""
    out = np.empty((len(queries), k), dtype=np.float64)
    for start in range(0, len(queries), chunk):
        d = _numpy_squared(queries.x[start : start + chunk], bank, chunk, queries.norms[start : start + chunk])
        if k < d.shape[1]:
            d = np.partition(d, k - 1, axis=1)[:, :k]
        out[start : start + len(d)] = np.sort(d, axis=1)
    return out


def knn_score(bank: np.ndarray, queries: np.ndarray, k: int, device: str = "cpu", chunk: int = 2048) -> np.ndarray:
    """Sum of squared distances from each query to its k nearest bank features (k capped at |bank|)."""
    return nearest_squared(bank, queries, k, device=device, chunk=chunk).sum(1)

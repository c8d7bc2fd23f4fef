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
    import torch

    tb = torch.as_tensor(np.asarray(b, dtype=np.float64), device=device)
    nb = (tb * tb).sum(1)
    out = np.empty((len(a), len(b)), dtype=np.float64)
    for start in range(0, len(a), chunk):
        ta = torch.as_tensor(np.asarray(a[start : start + chunk], dtype=np.float64), device=device)
        d = (ta * ta).sum(1, keepdim=True) + nb.unsqueeze(0) - 2.0 * ta @ tb.T
        out[start : start + len(ta)] = d.clamp_min_(0.0).cpu().numpy()
    return out


def _numpy_squared(a: np.ndarray, b: np.ndarray, chunk: int) -> np.ndarray:
    """The Gram expansion in float64 numpy (for integer features: the exact integers, as torch's)."""
    nb = (b * b).sum(1)
    out = np.empty((len(a), len(b)), dtype=np.float64)
    for start in range(0, len(a), chunk):
        block = a[start : start + chunk]
        d = (block * block).sum(1)[:, None] + nb[None, :] - 2.0 * (block @ b.T)
        out[start : start + len(block)] = np.maximum(d, 0.0, out=d)
    return out


def _integral(x: np.ndarray) -> bool:
    return bool(np.array_equal(x, np.rint(x)))


def uses_faiss(device: str, bank: np.ndarray, queries: np.ndarray) -> bool:
    """Whether ``nearest_squared`` searches with faiss (CPU, non-integer features)."""
    return str(device) == "cpu" and not (_integral(bank) and _integral(queries))


def nearest_squared(bank: Any, queries: Any, k: int, device: str = "cpu", dtype: Any = None,
                    chunk: int = 2048, search: str = "auto") -> np.ndarray:
    """(len(queries), k) squared L2 distances from each query to its k nearest bank rows,
    ascending, float64 (k capped at |bank|). ``bank``/``queries``: arrays or tensors; ``dtype``:
    the torch path's precision (default float64); ``search``: ``auto`` (see the module), or
    ``torch`` (the benchmark's reference)."""
    k = min(k, len(bank))
    if str(device) == "cpu":
        bank, queries = _as_numpy(bank), _as_numpy(queries)
        if search == "auto" and uses_faiss(device, bank, queries):
            import faiss

            index = faiss.IndexFlatL2(bank.shape[1])
            index.add(np.ascontiguousarray(bank, dtype=np.float32))
            found, _ = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
            return np.maximum(found.astype(np.float64), 0.0)
        if search == "auto" and dtype is None:  # integer features: exact integers, as torch's
            return _numpy_nearest(np.asarray(bank, dtype=np.float64), np.asarray(queries, dtype=np.float64), k, chunk)
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


def _numpy_nearest(bank: np.ndarray, queries: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """The k smallest squared distances per query, ascending (torch.topk's values)."""
    out = np.empty((len(queries), k), dtype=np.float64)
    for start in range(0, len(queries), chunk):
        d = _numpy_squared(queries[start : start + chunk], bank, chunk)
        if k < d.shape[1]:
            d = np.partition(d, k - 1, axis=1)[:, :k]
        out[start : start + len(d)] = np.sort(d, axis=1)
    return out


def knn_score(bank: np.ndarray, queries: np.ndarray, k: int, device: str = "cpu", chunk: int = 2048) -> np.ndarray:
    """Sum of squared distances from each query to its k nearest bank features (k capped at |bank|)."""
    return nearest_squared(bank, queries, k, device=device, chunk=chunk).sum(1)

"""Exact nearest-neighbour search and distance matrices, chunked to bound memory: the one place
that chooses how.

``nearest_squared`` (the k smallest squared L2 distances per query) uses faiss-cpu's exact
``IndexFlatL2`` on the CPU, which ``benchmarks/bench_neighbours.py`` measured faster than the
torch code at the paper's sizes (PANDA 4000 x 2048 bank, PatchCore ~30 000 x 1024), and torch
otherwise: on a GPU (faiss-cpu has none), and for integer-valued features (the ``pixels``
backbone, 0..255), where faiss's float32 arithmetic would round |x|^2 > 2^24 and break exact ties.

The torch path is a Gram expansion |a|^2 + |b|^2 - 2 a.b in the precision asked for (float64 for
the kNN/PANDA features): for integer-valued features every product and partial sum is then an
integer below 2^53, so the result is the exact integer squared distance whatever the summation
order: ties stay ties, and AUROCs count them as ties. faiss (float32) agrees with the float64
path to about 1e-6 relative (the benchmark prints it; tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def squared_distances(a: np.ndarray, b: np.ndarray, device: str = "cpu", chunk: int = 4096) -> np.ndarray:
    """(len(a), len(b)) squared L2 distances, float64, computed chunk by chunk of ``a``."""
    import torch

    tb = torch.as_tensor(np.asarray(b, dtype=np.float64), device=device)
    nb = (tb * tb).sum(1)
    out = np.empty((len(a), len(b)), dtype=np.float64)
    for start in range(0, len(a), chunk):
        ta = torch.as_tensor(np.asarray(a[start : start + chunk], dtype=np.float64), device=device)
        d = (ta * ta).sum(1, keepdim=True) + nb.unsqueeze(0) - 2.0 * ta @ tb.T
        out[start : start + len(ta)] = d.clamp_min_(0.0).cpu().numpy()
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
    import torch

    dtype = dtype or torch.float64
    k = min(k, len(bank))
    if str(device) == "cpu":
        bank = bank.detach().numpy() if isinstance(bank, torch.Tensor) else np.asarray(bank)
        queries = queries.detach().numpy() if isinstance(queries, torch.Tensor) else np.asarray(queries)
        if search == "auto" and uses_faiss(device, bank, queries):
            import faiss

            index = faiss.IndexFlatL2(bank.shape[1])
            index.add(np.ascontiguousarray(bank, dtype=np.float32))
            found, _ = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
            return np.maximum(found.astype(np.float64), 0.0)
    tb = torch.as_tensor(bank, device=device).to(dtype)
    nb = (tb * tb).sum(1)
    out = np.empty((len(queries), k), dtype=np.float64)
    for start in range(0, len(queries), chunk):
        tq = torch.as_tensor(queries[start : start + chunk], device=device).to(dtype)
        d = ((tq * tq).sum(1, keepdim=True) + nb.unsqueeze(0) - 2.0 * tq @ tb.T).clamp_min_(0.0)
        out[start : start + len(tq)] = torch.topk(d, k, dim=1, largest=False).values.double().cpu().numpy()
    return out


def knn_score(bank: np.ndarray, queries: np.ndarray, k: int, device: str = "cpu", chunk: int = 2048) -> np.ndarray:
    """Sum of squared distances from each query to its k nearest bank features (k capped at |bank|)."""
    return nearest_squared(bank, queries, k, device=device, chunk=chunk).sum(1)

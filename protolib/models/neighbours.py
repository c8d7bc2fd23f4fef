"""Exact nearest-neighbour distances with torch (CPU or GPU), chunked to bound memory.

Distances are float64 Gram expansions |a|^2 + |b|^2 - 2 a.b. For integer-valued features (the
``pixels`` backbone: 0..255) every product and partial sum is an integer below 2^53, so the
result is the exact integer squared distance whatever the summation order: ties stay ties, and
AUROCs count them as ties.
"""

from __future__ import annotations

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


def knn_score(bank: np.ndarray, queries: np.ndarray, k: int, device: str = "cpu", chunk: int = 2048) -> np.ndarray:
    """Sum of squared distances from each query to its k nearest bank features (k capped at |bank|)."""
    import torch

    k = min(k, len(bank))
    tb = torch.as_tensor(np.asarray(bank, dtype=np.float64), device=device)
    nb = (tb * tb).sum(1)
    out = np.empty(len(queries), dtype=np.float64)
    for start in range(0, len(queries), chunk):
        tq = torch.as_tensor(np.asarray(queries[start : start + chunk], dtype=np.float64), device=device)
        d = ((tq * tq).sum(1, keepdim=True) + nb.unsqueeze(0) - 2.0 * tq @ tb.T).clamp_min_(0.0)
        out[start : start + len(tq)] = torch.topk(d, k, dim=1, largest=False).values.sum(1).cpu().numpy()
    return out

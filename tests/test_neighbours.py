"""The one nearest-neighbour search: faiss-cpu (exact IndexFlatL2) on the CPU for float
features, torch otherwise; both give the same neighbours and distances (float32 rounding), and
integer pixel features keep exact integer distances."""

from __future__ import annotations

import numpy as np
import torch

from protolib.models.neighbours import knn_score, nearest_squared, uses_faiss


def test_faiss_search_equals_the_float64_torch_search():
    rng = np.random.default_rng(0)
    bank = np.abs(rng.standard_normal((500, 256), dtype=np.float32))
    queries = np.abs(rng.standard_normal((300, 256), dtype=np.float32))
    assert uses_faiss("cpu", bank, queries)
    found = nearest_squared(bank, queries, 3)
    exact = ((queries[:, None, :].astype(np.float64) - bank[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_allclose(found, np.sort(exact, axis=1)[:, :3], rtol=1e-5)
    # tensors in, the same answer (PatchCore passes its float32 bank and patches as tensors)
    np.testing.assert_allclose(nearest_squared(torch.from_numpy(bank), torch.from_numpy(queries), 3), found)
    np.testing.assert_allclose(knn_score(bank, queries, 2), np.sort(exact, axis=1)[:, :2].sum(1), rtol=1e-5)


def test_integer_features_keep_exact_distances():
    rng = np.random.default_rng(1)
    bank = rng.integers(0, 256, (200, 784)).astype(np.float32)  # |x|^2 up to 5e7 > 2^24
    queries = rng.integers(0, 256, (50, 784)).astype(np.float32)
    assert not uses_faiss("cpu", bank, queries)
    exact = ((queries[:, None, :].astype(np.int64) - bank[None].astype(np.int64)) ** 2).sum(-1)
    assert np.array_equal(nearest_squared(bank, queries, 2), np.sort(exact, axis=1)[:, :2])

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


def test_prepared_queries_give_the_exact_distances_and_faiss_the_same_as_plain_arrays():
    """``Queries`` (a test set prepared once for many banks) against definitions: integer pixels
    give the exact integer distances (int64 brute force) for banks of any size; float features
    give what faiss gives for the plain array."""
    import faiss

    from protolib.models.neighbours import Queries

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (500, 64)).astype(np.float32)
    prepared = Queries(pixels)
    floats = rng.normal(size=(400, 32)).astype(np.float32)
    prepared_floats = Queries(floats)
    for m in (1, 3, 17):
        bank = rng.integers(0, 256, (m, 64)).astype(np.float32)
        exact = ((pixels[:, None, :].astype(np.int64) - bank[None].astype(np.int64)) ** 2).sum(-1)
        assert np.array_equal(nearest_squared(bank, prepared, 2, chunk=128), np.sort(exact, axis=1)[:, :2])
        fbank = rng.normal(size=(m, 32)).astype(np.float32)
        index = faiss.IndexFlatL2(32)
        index.add(fbank)
        assert np.array_equal(
            nearest_squared(fbank, prepared_floats, 2), np.maximum(index.search(floats, min(2, m))[0], 0)
        )
    assert prepared.integral and not prepared_floats.integral


def test_numpy_cpu_path_equals_the_torch_path_bit_for_bit():
    """The CPU paths replaced torch's float64 Gram expansion (kept for GPUs and as the
    benchmark's reference); on integer pixels both are the exact integers, so they are equal."""
    from protolib.models.neighbours import squared_distances

    rng = np.random.default_rng(2)
    bank = rng.integers(0, 256, (300, 784)).astype(np.float32)
    queries = rng.integers(0, 256, (70, 784)).astype(np.float32)
    torch_path = nearest_squared(bank, queries, 2, search="torch")
    assert np.array_equal(nearest_squared(bank, queries, 2, chunk=16), torch_path)
    tb, tq = torch.from_numpy(bank).double(), torch.from_numpy(queries).double()
    reference = ((tq * tq).sum(1, keepdim=True) + (tb * tb).sum(1)[None] - 2 * tq @ tb.T).clamp_min(0).numpy()
    assert np.array_equal(squared_distances(queries, bank, chunk=16), reference)
    # float features: numpy float64 and torch float64 agree to rounding
    a, b = rng.normal(size=(40, 64)), rng.normal(size=(30, 64))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    expected = ((ta * ta).sum(1, keepdim=True) + (tb * tb).sum(1)[None] - 2 * ta @ tb.T).clamp_min(0).numpy()
    np.testing.assert_allclose(squared_distances(a, b), expected, rtol=1e-12, atol=1e-12)


def test_a_cpu_knn_job_imports_neither_torch_nor_sklearn(tmp_path):
    """Start-up is most of a small job: a kNN-on-pixels evaluation on a machine without GPU
    device files must not pay for importing torch, scikit-learn or scipy."""
    import subprocess
    import sys
    from pathlib import Path

    from protolib.models.backbones import GPU_DEVICE_FILES

    if any(Path(f).exists() for f in GPU_DEVICE_FILES):
        import pytest

        pytest.skip("a GPU machine: device 'auto' rightly imports torch to ask it")
    code = (
        "import sys, numpy as np\n"
        "from protolib.models import make_detector\n"
        "from protolib.metrics import auroc\n"
        "det = make_detector({'detector': 'knn', 'backbone': 'pixels', 'k': 2}, device='auto')\n"
        "x = np.random.default_rng(0).integers(0, 256, (20, 64)).astype(float)\n"
        "det.fit_features(x[:10]); s = det.score_features(x[10:])\n"
        "auroc(np.r_[np.zeros(5), np.ones(5)], s)\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

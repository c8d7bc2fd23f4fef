"""Exact nearest-neighbour search: today's torch code against faiss-cpu ``IndexFlatL2`` (not a test).

At the paper's sizes (random ReLU-like float32 features; the search cost does not depend on
the values):

- PANDA / kNN scoring: a 4000 x 2048 bank, 15 000 queries, k = 2, sum of the two squared
  distances (``neighbours.nearest_squared(search="torch")``: the float64 Gram expansion that
  ``knn_score`` ran before faiss, and still runs on GPUs and for integer pixel features);
- PatchCore (MVTec): a ~30 000 x 1024 core-set, 784 query patches per image, nearest squared
  distance per patch (``patchcore.squared_pairwise_distances`` in float32, chunks of 8192
  queries, as ``PatchCoreDetector.patch_scores`` ran before faiss, and runs on GPUs).

Query counts can be reduced (``--panda-queries``, ``--patchcore-images``); both methods scale
linearly in the number of queries, so the ratio holds. Prints the time per method, the ratio
faiss / torch (< 1: faiss faster), and how far faiss's results are from today's.
Run:  python benchmarks/bench_neighbours.py [--panda-queries 15000] [--patchcore-images 10] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np
import torch

from protolib.models.neighbours import nearest_squared
from protolib.models.patchcore import squared_pairwise_distances


def features(n: int, d: int, seed: int) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def patchcore_torch(bank: np.ndarray, queries: np.ndarray, chunk: int = 8192) -> np.ndarray:
    b, q = torch.from_numpy(bank), torch.from_numpy(queries)
    with torch.inference_mode():
        return torch.cat(
            [squared_pairwise_distances(q[s : s + chunk], b).amin(1) for s in range(0, len(q), chunk)]
        ).numpy()


def report(name: str, t_torch: float, t_faiss: float, ours: np.ndarray, theirs: np.ndarray) -> None:
    rel = np.abs(ours - theirs) / np.maximum(np.abs(ours), 1e-12)
    print(
        f"{name:<44} torch {t_torch:8.2f} s   faiss {t_faiss:8.2f} s   faiss/torch {t_faiss / t_torch:5.2f}"
        f"   max rel. diff {rel.max():.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panda-queries", type=int, default=15000)
    parser.add_argument("--patchcore-images", type=int, default=10)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    import faiss

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    print(f"threads: {args.threads} (torch and faiss)")

    bank, queries = features(4000, 2048, 0), features(args.panda_queries, 2048, 1)
    ours, t_torch = timed(lambda: nearest_squared(bank, queries, 2, search="torch").sum(1))
    theirs, t_faiss = timed(lambda: nearest_squared(bank, queries, 2).sum(1))  # auto: faiss on the CPU
    report(f"PANDA 4000x2048 bank, {args.panda_queries} queries, k=2", t_torch, t_faiss, ours, theirs)

    bank, queries = features(30000, 1024, 2), features(784 * args.patchcore_images, 1024, 3)
    ours, t_torch = timed(lambda: patchcore_torch(bank, queries))
    theirs, t_faiss = timed(lambda: nearest_squared(bank, queries, 1, dtype=torch.float32)[:, 0])
    report(f"PatchCore 30000x1024 bank, {args.patchcore_images} images x 784", t_torch, t_faiss, ours, theirs)


if __name__ == "__main__":
    main()

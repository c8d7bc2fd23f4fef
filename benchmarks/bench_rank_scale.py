"""``protolib rank``'s stages at n = 5 000 to 100 000 Fashion-MNIST images (not a test).

The first n of Fashion-MNIST's 70 000 images (train, then t10k; past 70 000 the same images
mirrored left to right, a synthetic folder) are written as 28 x 28 PNG files under ``--workdir``
(deleted at the end unless ``--keep``), then each n is ranked in its own process at the CLI's
defaults (pixels at 64 x 64, M = 10, 10 atypical, k = 5), stage by stage: reading, embedding,
neighbours and cover (``make_pass``: the exact matrix up to ``EXACT_MAX``, the linear-memory
pass above), the ranking. Per stage: wall time and the process's peak RSS so far. The plain
reference, measured in the same run where it fits in memory: the exact pass on the full distance
matrix with the cover as it was defined before (one n x n scratch buffer); printed as time
ratios (ours / reference) and, above ``EXACT_MAX``, the objective ratio (summed squared distance
of the covered images to their nearest prototype, ours / exact). At the end a table: one row per
n and search, with the exponent a of n^a by which the total time grew from the previous n (n log
n's own is printed beside it).

With ``--classes``: the linear-memory cover against the exact one on whole Fashion-MNIST
classes (7 000 images each, 64 x 64 pixels, 10 excluded, k = 5), the candidate count scaled to
the share it is at 70 000 images (4 096 / 70 000 = 5.9 %) and at 100 000 (4.1 %); prints the
objective ratio (linear-memory / exact) per class, share and M.

Run:  python benchmarks/bench_rank_scale.py [--sizes 5000 20000 70000 100000] [--knn-index flat ivf]
      [--reference-max 20000] [--workdir /tmp/bench_rank_scale] [--keep]
      python benchmarks/bench_rank_scale.py --classes 0 1 2 3 [--M 1 5 10 25] [--shares 0.059 0.041]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np

FASHION_ROOT = "/usr/share/datasets/fashion-mnist/"


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KB on Linux


def write_pngs(folder: Path, n: int) -> None:
    """The first n Fashion-MNIST images as PNG files; past its 70 000, the images again,
    mirrored left to right (new images of the same kind: a synthetic folder of up to 140 000)."""
    from PIL import Image

    from protolib.data.fashion_mnist import load_arrays

    if folder.is_dir() and len(list(folder.iterdir())) == n:
        return
    folder.mkdir(parents=True, exist_ok=True)
    images, _ = load_arrays(FASHION_ROOT)
    if n > 2 * len(images):
        raise SystemExit(f"--sizes: at most {2 * len(images)} images (Fashion-MNIST's, then mirrored)")
    for i in range(n):
        image = images[i] if i < len(images) else images[i - len(images)][:, ::-1]
        Image.fromarray(np.ascontiguousarray(image)).save(folder / f"fm_{i:06d}.png")


def old_cover(distances: np.ndarray, M: int) -> list[int]:
    """The cover as defined before: one (n, n) scratch buffer, every row summed at once."""
    nearest, chosen = np.full(distances.shape[1], np.inf), []
    buffer = np.empty_like(distances)
    while len(chosen) < M:
        cost = np.minimum(distances, nearest[None, :], out=buffer).sum(axis=1)
        cost[chosen] = np.inf
        j = int(np.argmin(cost))
        chosen.append(j)
        nearest = np.minimum(nearest, distances[j])
    return chosen


def one(folder: Path, reference: bool, index: str = "flat") -> dict:
    """Stage times and peaks of one n (run in a fresh process)."""
    from protolib.models.backbones import pixels
    from protolib.rank.folders import read_folder
    from protolib.rank.ranking import embed_folder
    from protolib.selection.typicality import make_pass

    out: dict = {"stages": []}

    def stage(name: str, start: float) -> None:
        out["stages"].append({"stage": name, "seconds": time.perf_counter() - start, "peak_gb": peak_gb()})

    t = time.perf_counter()
    data = read_folder(folder, 64, progress=False)
    stage("read + resize", t)
    t = time.perf_counter()
    features = embed_folder(pixels(), data, "pixels", 64, "cpu", lambda m: None, progress=False)
    stage("embed", t)
    n, M, exclude = len(data), 10, min(10, len(data) // 10)
    t = time.perf_counter()
    found_pass = make_pass(features, 5, progress=False, index=index)
    stage("kNN typicality", t)
    t = time.perf_counter()
    found = found_pass.find(M, exclude)
    stage("cover (M = 10)", t)
    t = time.perf_counter()
    found.rank(data.names)
    stage("rank", t)
    out["n"], out["path"], out["index"] = n, type(found_pass).__name__, index
    out["objective"] = float(found.core_dist[found.typical].sum())
    if reference:
        from protolib.models.neighbours import squared_distances
        from protolib.selection.typicality import knn_from_distances

        t = time.perf_counter()
        d = squared_distances(features, features)
        knn = knn_from_distances(d, 5)
        typical = np.ones(n, dtype=bool)
        typical[np.argsort(-knn, kind="stable")[:exclude]] = False
        rows = np.flatnonzero(typical)
        sub = d if exclude == 0 else d[np.ix_(rows, rows)]
        core = [int(rows[j]) for j in old_cover(sub, M)]
        out["reference_seconds"] = time.perf_counter() - t
        out["reference_objective"] = float(d[np.ix_(rows, core)].min(axis=1).sum())
        out["same_core"] = core == found.core
        out["peak_gb_with_reference"] = peak_gb()
    return out


def cover_against_exact(classes: list[int], Ms: list[int], shares: list[float]) -> None:
    """Objective ratio of the linear-memory cover to the exact one on whole classes."""
    from protolib.data.fashion_mnist import load_arrays
    from protolib.data.images import resize
    from protolib.models.neighbours import squared_distances
    from protolib.selection import typicality_scaled
    from protolib.selection.typicality import TypicalityPass

    images, labels = load_arrays(FASHION_ROOT)
    print("| class | share | " + " | ".join(f"M = {M}" for M in Ms) + " |")
    for c in classes:
        x = np.stack([resize(image, 64) for image in images[labels == c]]).reshape(-1, 64 * 64).astype(np.float32)
        exact = TypicalityPass(squared_distances(x, x), 5)
        want = {M: exact.find(M, 10) for M in Ms}
        for share in shares:
            typicality_scaled.MAX_CANDIDATES = int(round(share * len(x)))
            t = time.perf_counter()
            scaled = typicality_scaled.ScaledPass(x, 5, progress=False)
            ratios = []
            for M in Ms:
                got = scaled.find(M, 10)
                ratios.append(got.core_dist[got.typical].sum() / want[M].core_dist[want[M].typical].sum())
            print(
                f"| {c} | {share:.1%} | "
                + " | ".join(f"{r:.5f}" for r in ratios)
                + f" | ({time.perf_counter() - t:.0f} s)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 70000, 100000])
    parser.add_argument(
        "--knn-index", nargs="+", default=["flat"], choices=["flat", "ivf"], help="kNN searches to run at each n"
    )
    parser.add_argument("--reference-max", type=int, default=20000, help="largest n to run the exact reference at")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_rank_scale"))
    parser.add_argument("--keep", action="store_true", help="keep the PNG folders")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--classes", type=int, nargs="+", help="compare the cover with the exact one on these classes")
    parser.add_argument("--M", type=int, nargs="+", default=[1, 5, 10, 25])
    parser.add_argument("--shares", type=float, nargs="+", default=[4096 / 70000, 4096 / 100000])
    args = parser.parse_args()
    if args.classes:
        cover_against_exact(args.classes, args.M, args.shares)
        return
    if args.one:
        print(json.dumps(one(args.one, args.reference, args.knn_index[0])))
        return
    runs = []
    try:
        for n in args.sizes:
            folder = args.workdir / f"fm{n}"
            write_pngs(folder, n)
            for index in args.knn_index:
                cmd = [sys.executable, __file__, "--one", str(folder), "--knn-index", index] + (
                    ["--reference"] if n <= args.reference_max and index == "flat" else []
                )
                run = subprocess.run(cmd, check=False, capture_output=True, text=True)
                if run.returncode != 0:
                    print(f"n = {n} ({index}): failed\n{run.stderr[-2000:]}")
                    continue
                runs.append(json.loads(run.stdout.strip().splitlines()[-1]))
                report(runs[-1])
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    table(runs)


def report(r: dict) -> None:
    total = sum(s["seconds"] for s in r["stages"])
    print(
        f"n = {r['n']} ({r['path']}, kNN {r['index']}): total {total:.1f} s, "
        f"peak RSS {max(s['peak_gb'] for s in r['stages']):.2f} GB"
    )
    for s in r["stages"]:
        print(f"  {s['stage']:<16} {s['seconds']:8.1f} s   peak so far {s['peak_gb']:6.2f} GB")
    if "reference_seconds" in r:
        ours = sum(s["seconds"] for s in r["stages"][2:4])
        print(
            f"  reference (exact matrix, old cover): {r['reference_seconds']:.1f} s, peak "
            f"{r['peak_gb_with_reference']:.2f} GB; "
            f"neighbours + cover ours / reference {ours / r['reference_seconds']:.2f}; "
            f"objective ours / exact {r['objective'] / r['reference_objective']:.5f}; same core-set: {r['same_core']}"
        )
    print(f"  time per n log n: {total / (r['n'] * np.log(r['n'])) * 1e6:.2f} us", flush=True)


def table(runs: list[dict]) -> None:
    """One markdown row per run: stage times, peak, and how the time grew from the previous n
    of the same search (the exponent a of n^a; n log n between 20 000 and 100 000 is about 1.1)."""
    names = [s["stage"] for s in runs[0]["stages"]] if runs else []
    print("\n| n | kNN | " + " | ".join(names) + " | total | peak RSS | growth exponent (total) |")
    print("|---" * (len(names) + 5) + "|")
    last: dict[str, tuple[int, float]] = {}
    for r in runs:
        total = sum(s["seconds"] for s in r["stages"])
        grown = ""
        if r["index"] in last:
            n0, t0 = last[r["index"]]
            grown = f"{np.log(total / t0) / np.log(r['n'] / n0):.2f} (n log n: {nlogn_exponent(n0, r['n']):.2f})"
        last[r["index"]] = (r["n"], total)
        cells = " | ".join(f"{s['seconds']:.1f} s" for s in r["stages"])
        peak = max(s["peak_gb"] for s in r["stages"])
        print(f"| {r['n']:,} | {r['index']} | {cells} | {total:.1f} s | {peak:.2f} GB | {grown} |".replace(",", " "))


def nlogn_exponent(n0: int, n1: int) -> float:
    """The exponent a with (n1 / n0)^a = (n1 log n1) / (n0 log n0)."""
    return float(np.log(n1 * np.log(n1) / (n0 * np.log(n0))) / np.log(n1 / n0))


if __name__ == "__main__":
    main()

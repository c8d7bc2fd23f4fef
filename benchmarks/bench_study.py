"""Wall time of a whole study, per rule, next to a plain numpy script of greedy + random + 100 %.

    python benchmarks/bench_study.py [--configfile config/fashion_mnist.yaml] [--cores 2]

Runs ``snakemake --cores N --configfile ...`` in a fresh temporary folder (from scratch, like a
fresh clone) under the clock, then reads Snakemake's own records of every job
(``.snakemake/metadata``: start and end time per output) and prints, per rule, the number of
jobs and their summed seconds. The reference, measured in the same run on the study's prepared
data and splits: plain numpy (no protolib, no torch) computing the single-sample val AUROC of
every candidate, greedy and ``repeats`` random subsets per M and the 100 % row, with test AUROC by
the rank formula. It is the protocol's floor, not the study (no evolutionary, GMM or typical).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]


def per_rule(workdir: Path) -> dict[str, tuple[int, float]]:
    """rule -> (jobs, summed job seconds) from Snakemake's metadata records."""
    jobs: dict[tuple[str, int], float] = {}
    for record in (workdir / ".snakemake" / "metadata").glob("*"):
        meta = json.loads(record.read_text())
        if meta.get("starttime") and meta.get("endtime"):  # one record per output: a job's longest
            key = (meta["rule"], meta["job_hash"])
            jobs[key] = max(jobs.get(key, 0.0), meta["endtime"] - meta["starttime"])
    out: dict[str, list[float]] = defaultdict(list)
    for (rule, _), seconds in jobs.items():
        out[rule].append(seconds)
    return {rule: (len(v), float(sum(v))) for rule, v in sorted(out.items(), key=lambda kv: -sum(kv[1]))}


def _auroc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Row-wise AUROC by the Mann-Whitney rank formula (scores (n, V); ties: average ranks)."""
    order = scores.argsort(axis=-1, kind="stable")
    ranks = np.empty_like(scores)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[-1] + 1, dtype=float)[None, :].repeat(len(scores), 0), -1)
    pos = labels.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return (ranks[:, pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _knn_score(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    d = (queries**2).sum(1)[:, None] + (bank**2).sum(1)[None, :] - 2 * queries @ bank.T
    k = min(k, len(bank))
    return np.partition(np.maximum(d, 0), k - 1, axis=1)[:, :k].sum(1)


def numpy_reference(results: Path, config: dict) -> float:
    """Seconds for greedy + random + 100 % of every class, plain numpy, on the study's files."""
    dataset = next(iter(config["datasets"]))
    k = next(iter(config["models"].values())).get("k", 2)
    Ms, repeats = config["selection"]["M"], config["selection"].get("random", {}).get("repeats", 10)
    start = time.perf_counter()
    images = np.load(results / "data" / f"{dataset}.npz")["images"]
    x = images.reshape(len(images), -1).astype(np.float64) / (255.0 if images.dtype == np.uint8 else 1.0)
    rng = np.random.default_rng(0)
    for split_path in sorted((results / "splits" / dataset).glob("*.json")):
        split = json.loads(split_path.read_text())
        cand, train = np.array(split["candidates"]), np.array(split["train"])
        val, yv = np.array(split["val"]["ids"]), np.array(split["val"]["labels"])
        test, yt = np.array(split["test"]["ids"]), np.array(split["test"]["labels"])
        single = (x[cand] ** 2).sum(1)[:, None] + (x[val] ** 2).sum(1)[None, :] - 2 * x[cand] @ x[val].T
        order = np.argsort(-_auroc(yv, single), kind="stable")
        for M in Ms:
            _auroc(yt, _knn_score(x[cand[order[:M]]], x[test], k)[None, :])
            for _ in range(repeats):
                _auroc(yt, _knn_score(x[rng.choice(cand, M, replace=False)], x[test], k)[None, :])
        _auroc(yt, _knn_score(x[train], x[test], k)[None, :])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default=str(REPO / "config" / "fashion_mnist.yaml"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="default: a new temporary folder")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_study_"))
    config = yaml.safe_load(Path(args.configfile).read_text())
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(Path(args.configfile).resolve()), "--cores", str(args.cores), "--quiet"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    total = time.perf_counter() - start
    rules = per_rule(workdir)
    reference = numpy_reference(workdir / config["results"], config)
    print(f"study {args.configfile}: {total:.0f} s wall on {args.cores} cores, "
          f"{sum(n for n, _ in rules.values())} jobs ({workdir})")
    print(f"{'rule':28s} {'jobs':>5s} {'job seconds':>12s}")
    for rule, (n, seconds) in rules.items():
        print(f"{rule:28s} {n:5d} {seconds:12.1f}")
    print(f"plain numpy greedy + random + 100 %, same data, same run: {reference:.0f} s "
          f"(study / reference: {total / reference:.1f}x)")


if __name__ == "__main__":
    main()

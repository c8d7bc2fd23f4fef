"""Wall time of a whole study, per rule, next to a plain numpy script of greedy + random + 100 %.

    python benchmarks/bench_study.py [--configfile config/fashion_mnist.yaml] [--cores 2]

Runs ``snakemake --cores N --configfile ...`` in a fresh temporary folder (from scratch, like a
fresh clone) under the clock, then reads the ``benchmark:`` file Snakemake wrote for every job
(``{results}/benchmarks/<rule>/...tsv``: wall seconds and CPU seconds) and prints, per rule, the
number of jobs and their summed wall and CPU seconds. The reference, measured in the same run on
the study's prepared data and splits: plain numpy (no protolib, no torch) computing the
single-sample val AUROC of every candidate, greedy and ``repeats`` random subsets per M and the
100 % row, with test AUROC by the rank formula. It is the protocol's floor, not the study (no
evolutionary, GMM or typical). Its greedy and 100 % means are printed beside the study's: an
independent computation of the same protocol (raw pixels, exact squared distances, k nearest),
so they must be equal; its random subsets are its own and only timed.
"""

from __future__ import annotations

import argparse
import csv
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


def per_rule(results: Path) -> dict[str, tuple[int, float, float]]:
    """rule -> (jobs, summed wall seconds, summed CPU seconds) from the jobs' benchmark files."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for tsv in (results / "benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(results / "benchmarks").parts[0].removesuffix(".tsv")
        with tsv.open() as f:
            row = list(csv.DictReader(f, delimiter="\t"))[-1]
        out[rule].append((float(row["s"]), float(row["cpu_time"])))
    totals = {rule: (len(v), sum(w for w, _ in v), sum(c for _, c in v)) for rule, v in out.items()}
    return dict(sorted(totals.items(), key=lambda kv: -kv[1][2]))


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


def numpy_reference(results: Path, config: dict) -> tuple[float, dict[str, float]]:
    """Seconds for greedy + random + 100 % of every class, plain numpy, on the study's files,
    and its greedy and 100 % mean test AUROC (%)."""
    dataset = next(iter(config["datasets"]))
    k = next(iter(config["models"].values())).get("k", 2)
    Ms, repeats = config["selection"]["M"], config["selection"].get("random", {}).get("repeats", 10)
    start = time.perf_counter()
    images = np.load(results / "data" / f"{dataset}.npz")["images"]
    x = images.reshape(len(images), -1).astype(np.float64)  # raw pixels, as the `pixels` backbone
    rng = np.random.default_rng(0)
    means: dict[str, list[float]] = defaultdict(list)
    for split_path in sorted((results / "splits" / dataset).glob("*.json")):
        split = json.loads(split_path.read_text())
        cand, train = np.array(split["candidates"]), np.array(split["train"])
        val, yv = np.array(split["val"]["ids"]), np.array(split["val"]["labels"])
        test, yt = np.array(split["test"]["ids"]), np.array(split["test"]["labels"])
        single = (x[cand] ** 2).sum(1)[:, None] + (x[val] ** 2).sum(1)[None, :] - 2 * x[cand] @ x[val].T
        order = np.argsort(-_auroc(yv, single), kind="stable")
        for M in Ms:
            means[f"greedy {M}"].append(_auroc(yt, _knn_score(x[cand[order[:M]]], x[test], k)[None, :])[0])
            for _ in range(repeats):
                _auroc(yt, _knn_score(x[rng.choice(cand, M, replace=False)], x[test], k)[None, :])
        means["100 %"].append(_auroc(yt, _knn_score(x[train], x[test], k)[None, :])[0])
    return time.perf_counter() - start, {row: 100 * float(np.mean(v)) for row, v in means.items()}


def study_means(results: Path, config: dict) -> dict[str, float]:
    """The study's greedy and 100 % mean test AUROC (%) over classes, from its evaluation files."""
    dataset, model = next(iter(config["datasets"])), next(iter(config["models"]))
    means: dict[str, list[float]] = defaultdict(list)
    for path in (results / "eval" / dataset / model).glob("*/full.json"):
        means["100 %"].append(json.loads(path.read_text())["test_auroc"])
    for path in (results / "eval" / dataset / model).glob("*/greedy/M*_seed0.json"):
        result = json.loads(path.read_text())
        means[f"greedy {result['M']}"].append(result["test_auroc"])
    return {row: 100 * float(np.mean(v)) for row, v in means.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", default=str(REPO / "config" / "fashion_mnist.yaml"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="default: a new temporary folder")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_study_"))
    config = yaml.safe_load(Path(args.configfile).read_text())
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(Path(args.configfile).resolve()),
        "--cores",
        str(args.cores),
        "--quiet",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    total = time.perf_counter() - start
    results = workdir / config["results"]
    rules = per_rule(results)
    reference, reference_means = numpy_reference(results, config)
    ours = study_means(results, config)
    print(
        f"study {args.configfile}: {total:.0f} s wall on {args.cores} cores, "
        f"{sum(n for n, _, _ in rules.values())} jobs ({workdir})"
    )
    print(f"{'rule':28s} {'jobs':>5s} {'wall s':>9s} {'CPU s':>9s}")
    for rule, (n, wall, cpu) in rules.items():
        print(f"{rule:28s} {n:5d} {wall:9.1f} {cpu:9.1f}")
    print(
        f"{'all jobs':28s} {sum(n for n, _, _ in rules.values()):5d} "
        f"{sum(w for _, w, _ in rules.values()):9.1f} {sum(c for _, _, c in rules.values()):9.1f}"
    )
    print(
        f"plain numpy greedy + random + 100 %, same data, same run: {reference:.0f} s "
        f"(study / reference: {total / reference:.1f}x)"
    )
    print("mean test AUROC (%): study | plain numpy")
    for row in sorted(reference_means, key=lambda r: (r != "100 %", len(r), r)):
        print(f"  {row:12s} {ours.get(row, float('nan')):7.2f} | {reference_means[row]:7.2f}")


if __name__ == "__main__":
    main()

"""Benchmark: how long Snakemake takes to plan the paper's whole study (config/paper.yaml).

The data roots are replaced by empty stand-in folders (planning reads no data), and the plan
is made in a temporary working directory. Prints the job count and the wall time of
``snakemake -n``, against the plan of the embedded default measured in the same run.

    python benchmarks/bench_plan_paper.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def plan(config: Path, workdir: Path) -> tuple[float, int]:
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--quiet",
            "rules",
            "--cores",
            "2",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(config),
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    total = re.search(r"^total\s+(\d+)", out.stdout + out.stderr, re.M)
    return seconds, int(total.group(1)) if total else -1


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
        for name, dataset in config["datasets"].items():
            root = tmp / "data" / name
            root.mkdir(parents=True)
            dataset["root"] = str(root)
        config["results"] = str(tmp / "results")
        paper = tmp / "paper.yaml"
        paper.write_text(yaml.safe_dump(config))
        default = yaml.safe_load((REPO / "config.yaml").read_text())
        default["results"] = str(tmp / "default")
        small = tmp / "default.yaml"
        small.write_text(yaml.safe_dump(default))
        t_default, n_default = plan(small, tmp)
        t_paper, n_paper = plan(paper, tmp)
    print("plan (snakemake -n)        jobs    seconds")
    print(f"  embedded default       {n_default:6d}   {t_default:7.1f}")
    print(
        f"  paper study            {n_paper:6d}   {t_paper:7.1f}   ({t_paper / t_default:.1f}x the default's time "
        f"for {n_paper / n_default:.0f}x the jobs)"
    )


if __name__ == "__main__":
    main()

"""Faults: a run killed part-way leaves no half-written output, and the rerun gives byte-identical
results to an uninterrupted run. The interrupted run starts on 1 core and the reference runs on 2,
so the comparison also shows that the core count does not change any result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protolib.layout import Layout
from tests.helpers import REPO, small_config, snakemake, write_config

pytestmark = pytest.mark.slow


def tiny(results: Path) -> dict:
    return small_config(
        results,
        datasets={"digits": {"classes": [5], "split": {"train": 0.6667}, "candidates": 12}},
        selection={
            "M": [1, 3],
            "methods": ["greedy", "evolutionary", "gmm", "random"],
            "random": {"repeats": 2},
            "evolutionary": {"population": 20, "generations": 5},
        },
    )


def outputs(results: Path) -> dict[str, bytes]:
    """Every result file except the ones whose bytes depend on the renderer (PNG/PDF) and the
    jobs' logs and benchmarks (timings)."""
    return {
        str(p.relative_to(results)): p.read_bytes()
        for p in sorted(results.rglob("*"))
        if p.is_file()
        and p.suffix not in (".png", ".pdf", ".part")
        and p.relative_to(results).parts[0] not in ("logs", "benchmarks")
    }


def test_killed_run_resumes_to_results_identical_to_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    ref_cfg = write_config(tmp_path / "ref.yaml", tiny(reference / "results"))
    done = snakemake("--cores", "2", "--configfile", str(ref_cfg), workdir=reference)
    assert done.returncode == 0, done.stderr[-3000:]

    interrupted = tmp_path / "interrupted"
    cfg = write_config(tmp_path / "int.yaml", tiny(interrupted / "results"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--directory",
            str(interrupted),
            "--cores",
            "1",
            "--configfile",
            str(cfg),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    subsets = interrupted / "results" / "subsets"
    deadline = time.time() + 300
    while time.time() < deadline and not (subsets.exists() and any(subsets.rglob("*.json"))):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # no clean-up chance: as a node failure would do
    proc.wait()
    assert not Path(Layout(interrupted / "results").tables).exists(), "the run was killed too late to test anything"
    partial = [p.name for p in (interrupted / "results").rglob("*.part")]
    for p in (interrupted / "results").rglob("*.json"):
        json.loads(p.read_text())  # every output that exists under its own name is complete

    # the documented way back after a crash: release the dead run's lock, redo what it left incomplete
    unlock = snakemake("--unlock", "--cores", "1", "--configfile", str(cfg), workdir=interrupted)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    resumed = snakemake("--cores", "2", "--rerun-incomplete", "--configfile", str(cfg), workdir=interrupted)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got, expected = outputs(interrupted / "results"), outputs(reference / "results")
    differing = sorted(set(got) ^ set(expected)) or [k for k in got if got[k] != expected[k]]
    assert not differing, f"resumed results differ from the uninterrupted run: {differing[:10]} (temp files: {partial})"

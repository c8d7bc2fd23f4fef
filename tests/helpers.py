"""Shared test helpers: the repo root, small study configs, and running Snakemake as a user would."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def small_config(results: Path, **overrides: Any) -> dict[str, Any]:
    """A reduced embedded-default study: two digit classes, small pools, quick selectors."""
    config: dict[str, Any] = {
        "results": str(results),
        "seed": 0,
        "device": "cpu",
        "datasets": {"digits": {"classes": [3, 8], "split": {"train": 0.6667}, "candidates": 30}},
        "models": {"knn": {"detector": "knn", "backbone": "pixels", "k": 2}},
        "runs": [{"dataset": "digits", "model": "knn"}],
        "scores": {"chunk_size": 16},
        "selection": {
            "M": [1, 5],
            "methods": ["greedy", "evolutionary", "gmm", "random"],
            "random": {"repeats": 3},
            "evolutionary": {"population": 40, "generations": 15},
        },
    }
    config.update(overrides)
    return config


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(*args: str, workdir: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run the workflow as a user would (``python -m snakemake``), capturing its output.

    ``workdir`` holds Snakemake's own state (.snakemake: locks, metadata), so tests never share
    locks with each other or with a user's run in the checkout; by default a fresh temp folder.
    """
    workdir = workdir or Path(tempfile.mkdtemp(prefix="snakemake-"))
    return subprocess.run(snakemake_command(*args, workdir=workdir), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def snakemake_command(*args: str, workdir: Path) -> list[str]:
    """The command line `snakemake()` runs (for tests that start it in the background)."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), *args]

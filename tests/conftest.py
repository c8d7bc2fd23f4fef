"""Shared fixtures: the repo root, and small study configs written to a temporary folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def repo() -> Path:
    return REPO


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


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run the workflow as a user would (``python -m snakemake``), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout,
    )

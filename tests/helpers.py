"""Shared test helpers: the repo root, small study configs, and running Snakemake as a user would."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
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
    return subprocess.run(
        snakemake_command(*args, workdir=workdir), cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def snakemake_command(*args: str, workdir: Path) -> list[str]:
    """The command line `snakemake()` runs (for tests that start it in the background)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]


# ----------------------------------------------------------------------------- the shared small study
STUDY_CLASSES = (3, 8)
STUDY_METHODS = ["greedy", "evolutionary", "gmm", "random", "manual"]
STUDY_TRANSFER = "knn_to_resnet"


def manual_ids() -> dict[str, list[int]]:
    """Three training ids per class of the shared study (the split is seeded, so known before the run)."""
    from protolib.data import load_dataset
    from protolib.data.splits import one_vs_rest_split

    labels = load_dataset({"loader": "digits"}).labels
    out = {}
    for cls in STUDY_CLASSES:
        split = one_vs_rest_split(
            labels,
            cls,
            dataset="digits",
            class_name=str(cls),
            train=0.6667,
            anomalies_per_other_class=1.0,
            candidates=20,
            seed=0,
        )
        out[str(cls)] = [int(i) for i in split.train[-3:]]
    return out


def study_config(results: Path) -> dict[str, Any]:
    """The shared small study: digits / knn, two classes, 20 candidates, M in {1, 3}, every
    selector, and a transfer entry digits/knn -> digits/knn_resnet."""
    config = small_config(results)
    config["datasets"]["digits"]["candidates"] = 20
    config["models"]["knn_resnet"] = {"detector": "knn", "backbone": "resnet18", "weights": "none", "image_size": 32}
    config["scores"] = {"chunk_size": 16}  # two chunks per class
    config["selection"] = {
        "M": [1, 3],
        "methods": list(STUDY_METHODS),
        "random": {"repeats": 2},
        "evolutionary": {"population": 20, "generations": 5},
        "manual": {"digits": manual_ids()},
    }
    config["transfer"] = [
        {
            "name": STUDY_TRANSFER,
            "source": {"dataset": "digits", "model": "knn"},
            "target": {"dataset": "digits", "model": "knn_resnet"},
            "methods": ["greedy", "random", "manual"],
        }
    ]
    config["report"] = {
        "fig2": {"dataset": "digits", "model": "knn"},
        "fig5": {"n_images": 4},
        "fig7": {"class": 8, "n_images": 3},
    }
    return config


@dataclass
class Study:
    """A finished study: its results folder, config (and the file it was run with) and the
    working directory that holds Snakemake's metadata for it."""

    results: Path
    config: dict[str, Any]
    path: Path
    workdir: Path


def run_study(workdir: Path, config: dict[str, Any]) -> Study:
    """Run every target of ``config`` (results under ``workdir``) with Snakemake, as a user would."""
    path = write_config(workdir / "study.yaml", config)
    # a guard against a hung run, not a speed limit: the shared study runs 50 jobs, each a Python
    # process, and a loaded 2-core machine can take well over the default 10 minutes for them
    out = snakemake("--cores", "2", "--configfile", str(path), workdir=workdir, timeout=1800)
    assert out.returncode == 0, out.stderr[-4000:]
    return Study(Path(config["results"]), config, path, workdir)

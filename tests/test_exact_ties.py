"""Exact distances keep exact ties: integer pixels give integer squared distances, and the saved
AUROCs of a small digits study equal an independent recomputation (int64 arithmetic, sklearn)
from the saved split and subset files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from protolib import io
from protolib.data import load_dataset
from protolib.models import make_detector
from tests.helpers import small_config, snakemake, write_config


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    digits = load_dataset({"loader": "digits"})
    return digits.images.reshape(len(digits.images), -1).astype(np.int64)


def exact_knn_scores(pixels: np.ndarray, train_ids, query_ids, k: int = 2) -> np.ndarray:
    """Sum of the k smallest squared distances, in int64 (exact)."""
    q, t = pixels[np.asarray(query_ids)], pixels[np.asarray(train_ids)]
    d = ((q[:, None, :] - t[None, :, :]) ** 2).sum(-1)
    return np.sort(d, axis=1)[:, : min(k, len(t))].sum(1)


def test_detector_counts_tied_scores_as_ties(pixels):
    digits = load_dataset({"loader": "digits"})
    det = make_detector({"detector": "knn", "backbone": "pixels", "k": 2}, device="cpu")
    train, test = np.arange(0, 40), np.arange(40, 1797)
    scores = det.fit(digits.images[train]).score(digits.images[test])
    exact = exact_knn_scores(pixels, train, test)
    assert len(np.unique(exact)) < len(exact)  # the data has tied scores
    assert np.array_equal(scores, exact)
    labels = digits.labels[test] != 0
    assert det.score(digits.images[test]).tolist() == scores.tolist()
    assert roc_auc_score(labels, scores) == roc_auc_score(labels, exact)


def check_against_recomputation(results: Path, classes: list[int], pixels: np.ndarray) -> int:
    """Compare every saved per-sample val AUROC and test AUROC with int64 + sklearn; the count."""
    checked = 0
    for cls in classes:
        split = json.loads((results / "splits" / "digits" / f"{cls}.json").read_text())
        val_ids, val_labels = split["val"]["ids"], split["val"]["labels"]
        matrix = io.read_npz(results / "scores" / "digits" / "knn" / str(cls) / "matrix.npz")
        for i, cand in enumerate(split["candidates"]):
            expected = roc_auc_score(val_labels, exact_knn_scores(pixels, [cand], val_ids))
            assert abs(matrix["sample_auroc"][i] - expected) <= 1e-9, (cls, cand)
            checked += 1
        evals = results / "eval" / "digits" / "knn" / str(cls)
        for path in sorted(evals.rglob("*.json")):
            if path.name == "full.json":
                ids = split["train"]
            else:
                subset = results / "subsets" / "digits" / "knn" / str(cls) / path.relative_to(evals)
                ids = json.loads(subset.read_text())["ids"]
            expected = roc_auc_score(split["test"]["labels"], exact_knn_scores(pixels, ids, split["test"]["ids"]))
            assert abs(json.loads(path.read_text())["test_auroc"] - expected) <= 1e-9, path
            checked += 1
    return checked


@pytest.mark.slow
def test_saved_aurocs_equal_an_independent_recomputation(tmp_path_factory, pixels):
    tmp = tmp_path_factory.mktemp("ties")
    classes = [1, 8]
    config = small_config(tmp / "results", datasets={
        "digits": {"classes": classes, "split": {"train": 0.6667}, "candidates": 60}})
    out = snakemake("--cores", "2", "--configfile", str(write_config(tmp / "c.yaml", config)), workdir=tmp)
    assert out.returncode == 0, out.stderr[-4000:]
    assert check_against_recomputation(tmp / "results", classes, pixels) == 2 * (60 + 1 + 2 * (1 + 1 + 1 + 3))

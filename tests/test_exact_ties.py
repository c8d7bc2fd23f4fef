"""Exact distances keep exact ties: integer pixels give integer squared distances, and the saved
AUROCs of a small digits study equal an independent recomputation (int64 arithmetic, sklearn)
from the saved split and subset files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from protolib import io
from protolib.data import load_dataset
from protolib.layout import Layout
from protolib.models import make_detector


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
    layout = Layout(results)
    for cls in classes:
        split = io.read_json(layout.split("digits", cls))
        val_ids, val_labels = split["val"]["ids"], split["val"]["labels"]
        matrix = io.read_npz(layout.scores("digits", "knn", cls))
        for i, cand in enumerate(split["candidates"]):
            expected = roc_auc_score(val_labels, exact_knn_scores(pixels, [cand], val_ids))
            assert abs(matrix["sample_auroc"][i] - expected) <= 1e-9, (cls, cand)
            checked += 1
        full = Path(layout.evaluation_full("digits", "knn", cls))
        for path in sorted(full.parent.rglob("*.json")):
            result = io.read_json(path)
            if path == full:
                ids = split["train"]
            else:
                subset = layout.subset(result["method"], result["M"], result["seed"], "digits", "knn", cls)
                ids = io.read_json(subset)["ids"]
            expected = roc_auc_score(split["test"]["labels"], exact_knn_scores(pixels, ids, split["test"]["ids"]))
            assert abs(result["test_auroc"] - expected) <= 1e-9, path
            checked += 1
    return checked


def test_saved_aurocs_equal_an_independent_recomputation(small_study, pixels):
    """Every per-sample val AUROC and every test AUROC (each method, M and seed, and 100 %) of
    the session's small digits study (tests.helpers.study_config, run once and shared)."""
    classes = small_study.config["datasets"]["digits"]["classes"]
    K = small_study.config["datasets"]["digits"]["candidates"]
    evals = list(Path(Layout(small_study.results).evaluation_full("digits", "knn", 0)).parents[1].rglob("*.json"))
    assert len(evals) > len(classes)  # 100 % and the subsets of every method were evaluated
    assert check_against_recomputation(small_study.results, classes, pixels) == len(classes) * K + len(evals)

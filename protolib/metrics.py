"""AUROC: scikit-learn for single vectors, a rank formula for many rows at once.

The row-wise form scores a whole population of subsets (or all K single-sample detectors) in
one call; it is the Mann-Whitney statistic with average ranks for ties, equal to
``sklearn.metrics.roc_auc_score`` row by row (tested).
"""

from __future__ import annotations

import numpy as np


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUROC with anomalies (label 1) as the positive class; scores must be finite."""
    # imported here, not at the top: jobs that never compute an AUROC skip ~1 s of start-up
    from sklearn.metrics import roc_auc_score

    from protolib.checks import check_finite  # checks imports this module

    scores = np.asarray(scores, dtype=np.float64)
    check_finite(scores, "AUROC scores")
    return float(roc_auc_score(np.asarray(labels), scores))


def rowwise_auroc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``scores`` (n, V) against binary ``labels`` (V,)."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both normal and anomalous samples")
    ranks = rankdata(scores, axis=1, method="average")
    return (ranks[:, labels].sum(axis=1) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)

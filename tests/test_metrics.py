import numpy as np
from sklearn.metrics import roc_auc_score

from protolib.metrics import auroc, rowwise_auroc


def test_rowwise_auroc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, 6, size=(7, 200)).astype(float)  # many ties
    expected = [roc_auc_score(labels, row) for row in scores]
    np.testing.assert_allclose(rowwise_auroc(scores, labels), expected, rtol=0, atol=1e-12)


def test_auroc_rejects_nan():
    import pytest

    with pytest.raises(ValueError, match="NaN"):
        auroc(np.array([0, 1]), np.array([0.1, np.nan]))

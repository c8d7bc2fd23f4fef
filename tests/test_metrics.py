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


def test_auroc_checks_finiteness_with_the_one_check():
    """The NaN check is protolib.checks.check_finite's (its error type and message), not a copy."""
    import pytest

    from protolib.checks import InputMismatchError

    with pytest.raises(InputMismatchError, match=r"^AUROC scores: 1 values are NaN or infinite$"):
        auroc(np.array([0, 1, 1]), np.array([0.1, np.inf, 0.3]))

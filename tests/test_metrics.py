import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from protolib.metrics import auroc, average_ranks, rowwise_auroc


def test_average_ranks_equal_scipy_rankdata():
    rng = np.random.default_rng(0)
    for scores in (
        rng.integers(0, 6, size=(5, 300)).astype(float),
        rng.normal(size=(3, 50)),
        np.zeros((2, 7)),
        rng.integers(0, 3, size=11).astype(float),
    ):
        assert np.array_equal(average_ranks(scores), rankdata(scores, axis=-1, method="average"))


def test_rowwise_auroc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = rng.integers(0, 6, size=(7, 200)).astype(float)  # many ties
    expected = [roc_auc_score(labels, row) for row in scores]
    np.testing.assert_allclose(rowwise_auroc(scores, labels), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("seed", range(5))
def test_auroc_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random(15000) < 0.9).astype(int)
    scores = rng.integers(0, 4000, 15000) * 1.0 if seed % 2 else rng.normal(size=15000) + labels
    assert abs(auroc(labels, scores) - roc_auc_score(labels, scores)) <= 2e-16


def test_auroc_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        auroc(np.array([0, 1]), np.array([0.1, np.nan]))


def test_auroc_checks_finiteness_with_the_one_check():
    """The NaN check is protolib.checks.check_finite's (its error type and message), not a copy."""
    import pytest

    from protolib.checks import InputMismatchError

    with pytest.raises(InputMismatchError, match=r"^AUROC scores: 1 values are NaN or infinite$"):
        auroc(np.array([0, 1, 1]), np.array([0.1, np.inf, 0.3]))


def test_auroc_needs_both_classes():
    with pytest.raises(ValueError, match="both"):
        auroc(np.zeros(4), np.arange(4.0))


def test_rowwise_auroc_refuses_nan_rather_than_rank_it():
    from protolib.checks import InputMismatchError

    with pytest.raises(InputMismatchError, match="NaN or infinite"):
        rowwise_auroc(np.array([[0.1, np.nan, 0.3]]), np.array([0, 1, 1]))


def test_check_finite_counts_in_blocks_and_in_the_arrays_own_precision():
    """Features are checked a block of rows at a time in their own dtype (no float64 copy of
    the whole array); every non-finite value is counted, wherever the block boundaries fall."""
    from protolib.errors import InputMismatchError
    from protolib.metrics import FINITE_CHECK_ROWS, check_finite

    x = np.zeros((2 * FINITE_CHECK_ROWS + 3, 4), dtype=np.float32)
    check_finite(x, "features")
    check_finite(np.arange(10), "ids")  # integers are always finite
    x[[0, FINITE_CHECK_ROWS - 1, FINITE_CHECK_ROWS, -1], [0, 1, 2, 3]] = [np.nan, np.inf, -np.inf, np.nan]
    with pytest.raises(InputMismatchError, match=r"^features: 4 values are NaN or infinite$"):
        check_finite(x, "features")
    with pytest.raises(InputMismatchError, match="1 values"):
        check_finite(np.float64("nan"), "a scalar")

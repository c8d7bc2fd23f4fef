"""BraTS from NIfTI volumes built from a real brain template."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protolib.data import load_dataset
from protolib.data.base import DatasetFilesError
from tests.datasets.builders import (
    assert_clear,
    assert_deterministic,
    assert_disjoint,
    make_brats,
    split_of,
)


def test_brats_slices_labels_and_split(tmp_path: Path, brain: tuple[np.ndarray, np.ndarray]) -> None:
    make_brats(tmp_path, brain)
    cfg = {"loader": "brats", "root": str(tmp_path), "split": {"val_size": 8, "test_size": 8}, "candidates": 300}
    data = load_dataset(cfg)
    assert data.images.shape == (40, 128, 128) and data.images.dtype == np.uint8  # 8 volumes x 5 slices, 128x128
    assert data.class_names == ["normal"] and (data.labels == 0).all()
    assert data.meta["slice"].tolist() == [6, 7, 8, 9, 10] * 8
    expected = [(p <= 4 and z in (7, 8, 9)) for p in range(1, 9) for z in range(6, 11)]
    assert data.meta["anomalous"].tolist() == expected
    assert data.meta["patient"][-1] == "BraTS20_Training_008"
    assert data.images.max() == 255 and (data.images == 0).mean() > 0.1  # equalised brain, black background
    split = split_of(data, 0, cfg)
    assert split.class_name == "normal"
    assert (
        len(split.val_ids) == 8
        and split.val_labels.sum() == 4
        and len(split.test_ids) == 8
        and split.test_labels.sum() == 4
    )
    assert len(split.train) == 28 - 8 and not data.meta["anomalous"][split.train].any()
    assert np.array_equal(split.val_labels, data.meta["anomalous"][split.val_ids].astype(int))
    assert_disjoint(split)
    assert_deterministic(data, 0, cfg)
    capped = split_of(data, 0, {**cfg, "split": {"val_size": 8, "test_size": 8, "max_train": 5}})
    assert len(capped.train) == 5
    with pytest.raises(ValueError) as e:
        split_of(data, 0, {**cfg, "split": {"val_size": 80, "test_size": 80}})
    assert_clear(e, "(normal) has 28", "(anomalous) has 12", "split.val_size = 80")
    with pytest.raises(ValueError) as e:
        split_of(data, 0, {**cfg, "split": {"val_size": 7}})
    assert_clear(e, "split.val_size = 7", "multiple of 2")


def test_histogram_equalisation_matches_skimage() -> None:
    from skimage.exposure import equalize_hist as sk_equalize

    from protolib.data.medical import equalize_hist

    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 30.0, size=(40, 50))
    mask = rng.random((40, 50)) > 0.3
    assert np.allclose(equalize_hist(image, mask=mask), sk_equalize(image, mask=mask))
    assert np.allclose(equalize_hist(image), sk_equalize(image))


def test_brats_errors(tmp_path: Path, brain: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "brats", "root": str(tmp_path)})
    assert_clear(e, "no patient folders", "_t2.nii.gz", "_seg.nii.gz")
    make_brats(tmp_path, brain, n_patients=3)
    bad = tmp_path / "BraTS20_Training_002" / "BraTS20_Training_002_t2.nii.gz"
    bad.write_bytes(bad.read_bytes()[:400])
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "brats", "root": str(tmp_path)})
    assert_clear(e, str(bad), "not a readable NIfTI")
    (tmp_path / "BraTS20_Training_001" / "BraTS20_Training_001_seg.nii.gz").unlink()
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "brats", "root": str(tmp_path)})
    assert_clear(e, str(tmp_path / "BraTS20_Training_001"), "BraTS20_Training_001_seg.nii.gz")

"""MVTec-AD from its official folders (PNG textures with drawn defects and masks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from protolib.data import ImageDataset, load_dataset
from protolib.data.base import DatasetFilesError
from protolib.pipeline import make_split, prepare_dataset
from tests.datasets.builders import (
    _png,
    assert_clear,
    assert_deterministic,
    assert_disjoint,
    make_mvtec,
    split_of,
)


def test_mvtec_official_folders_and_split(tmp_path: Path, textures: dict[str, np.ndarray]) -> None:
    make_mvtec(tmp_path, textures)
    # a notebook's hidden copy of a good test image is not a defect type (nor a second image)
    good = sorted((tmp_path / "carpet" / "test" / "good").iterdir())[0]
    (tmp_path / "carpet" / "test" / ".ipynb_checkpoints").mkdir()
    shutil.copy(good, tmp_path / "carpet" / "test" / ".ipynb_checkpoints" / good.name)
    cfg = {
        "loader": "mvtec",
        "root": str(tmp_path),
        "classes": ["carpet", "grid"],
        "image_size": 32,
        "split": {"val_fraction": 0.5},
        "candidates": 4,
    }
    data = load_dataset(cfg)
    assert len(data.class_names) == 15 and data.images.shape == (32, 32, 32, 3) and data.images.dtype == np.uint8
    grid = data.class_index("grid")
    assert set(np.unique(data.labels).tolist()) == {data.class_index("carpet"), grid}
    grey = data.images[data.labels == grid]
    assert np.array_equal(grey[..., 0], grey[..., 1])  # grey files stored as RGB
    defect = data.meta["defect"]
    assert np.array_equal(data.meta["anomalous"], defect != "good")
    assert (data.meta["defect_fraction"][data.meta["anomalous"]] > 0).all()
    assert (data.meta["defect_fraction"][~data.meta["anomalous"]] == 0).all()
    for name in ("carpet", "grid"):
        split = split_of(data, name, cfg)
        idx = data.class_index(name)
        mine = np.flatnonzero(data.labels == idx)
        assert np.array_equal(split.train, mine[data.meta["part"][mine] == "train"]) and len(split.train) == 6
        assert len(split.candidates) == 4
        held = np.union1d(split.val_ids, split.test_ids)
        assert np.array_equal(held, mine[data.meta["part"][mine] == "test"])  # val + test = the official test
        for part_ids, labels in ((split.val_ids, split.val_labels), (split.test_ids, split.test_labels)):
            assert np.array_equal(labels, data.meta["anomalous"][part_ids].astype(int))
            assert set(defect[part_ids].tolist()) == {"good", "cut", "hole"}  # stratified by defect type
        assert len(split.val_ids) == 2 + 2 + 2 and len(split.test_ids) == 2 + 1 + 1
        assert_disjoint(split)
    assert_deterministic(data, "carpet", cfg)


def test_mvtec_through_prepare_and_split_rules(tmp_path: Path, textures: dict[str, np.ndarray]) -> None:
    make_mvtec(tmp_path / "mvtec", textures)
    config = {
        "seed": 1,
        "datasets": {
            "mv": {
                "loader": "mvtec",
                "root": str(tmp_path / "mvtec"),
                "classes": ["grid"],
                "image_size": 24,
                "split": {},
                "candidates": 300,
            }
        },
        "scores": {"chunk_size": 300},
    }
    prepare_dataset(config, "mv", tmp_path / "data.npz")
    data = ImageDataset.load(tmp_path / "data.npz")
    assert data.images.shape == (16, 24, 24, 3) and data.meta["defect"].dtype.kind == "U"
    split = make_split(config, "mv", data.class_index("grid"), tmp_path / "data.npz", tmp_path / "split.json")
    assert split.class_name == "grid" and len(split.train) == 6 and len(split.candidates) == 6
    with pytest.raises(ValueError) as e:  # a category that was not prepared
        make_split(config, "mv", data.class_index("carpet"), tmp_path / "data.npz", tmp_path / "s2.json")
    assert_clear(e, "carpet", "datasets.mv.classes")


def test_mvtec_errors(tmp_path: Path, textures: dict[str, np.ndarray]) -> None:
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "mvtec", "root": str(tmp_path / "none")})
    assert_clear(e, str(tmp_path / "none"), "train/good")
    make_mvtec(tmp_path, textures)
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "mvtec", "root": str(tmp_path), "classes": ["bottle"]})
    assert_clear(e, str(tmp_path / "bottle"), "carpet, grid", "ground_truth")
    mask = tmp_path / "grid" / "ground_truth" / "cut" / "001_mask.png"
    _png(mask, np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "mvtec", "root": str(tmp_path), "classes": ["grid"]})
    assert_clear(e, str(mask), "10x10")
    bad = tmp_path / "carpet" / "test" / "hole" / "002.png"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "mvtec", "root": str(tmp_path), "classes": ["carpet"]})
    assert_clear(e, str(bad), "truncated")
    for f in (tmp_path / "carpet" / "train" / "good").iterdir():
        f.unlink()
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "mvtec", "root": str(tmp_path), "classes": ["carpet"]})
    assert_clear(e, str(tmp_path / "carpet" / "train" / "good"), "no images")

"""MNIST from IDX files (torchvision's raw folder, or .gz files in the root)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from protolib.data import load_dataset
from protolib.data.base import DatasetFilesError
from tests.datasets.builders import (
    assert_clear,
    assert_deterministic,
    assert_disjoint,
    split_of,
)


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes() + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def make_mnist(root: Path, per_class: tuple[int, int] = (5, 2), gz: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    raw = root / "MNIST" / "raw"
    xs, ys = [], []
    for part, per in zip(("train", "t10k"), per_class, strict=True):
        y = rng.permutation(np.repeat(np.arange(10), per)).astype(np.uint8)
        x = rng.integers(0, 256, size=(len(y), 28, 28), dtype=np.uint8)
        write_idx(raw / f"{part}-images-idx3-ubyte", x, gz)
        write_idx(raw / f"{part}-labels-idx1-ubyte", y, gz)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def test_mnist_loads_torchvision_layout_and_splits(tmp_path: Path) -> None:
    from torchvision.datasets import MNIST

    x, y = make_mnist(tmp_path)
    cfg = {
        "loader": "mnist",
        "root": str(tmp_path),
        "split": {"train": 3, "anomalies_per_other_class": 1.0},
        "candidates": 2,
    }
    data = load_dataset(cfg)
    assert data.images.shape == (70, 28, 28) and np.array_equal(data.images, x) and np.array_equal(data.labels, y)
    tv = [MNIST(str(tmp_path), train=t) for t in (True, False)]  # torchvision reads the same files
    assert np.array_equal(np.concatenate([m.data.numpy() for m in tv]), data.images)
    assert np.array_equal(np.concatenate([m.targets.numpy() for m in tv]), data.labels)
    split = split_of(data, "7", cfg)
    assert len(split.train) == 3 and np.all(data.labels[split.train] == 7) and len(split.candidates) == 2
    assert (split.val_labels == 0).sum() == 2 and (split.val_labels == 1).sum() == 18
    assert_disjoint(split)
    assert_deterministic(data, 7, cfg)


def test_mnist_gz_files_in_root_and_errors(tmp_path: Path) -> None:
    x, _ = make_mnist(tmp_path / "a", gz=True)
    flat = tmp_path / "flat"
    shutil.copytree(tmp_path / "a" / "MNIST" / "raw", flat)
    assert np.array_equal(load_dataset({"loader": "mnist", "root": str(flat)}).images, x)
    (flat / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "mnist", "root": str(flat)})
    assert_clear(e, str(flat), "t10k-labels-idx1-ubyte", "MNIST/raw")
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "mnist", "root": str(tmp_path / "missing")})
    assert_clear(e, str(tmp_path / "missing"), "does not exist")
    raw = tmp_path / "a" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    raw.write_bytes(raw.read_bytes()[:200])
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "mnist", "root": str(tmp_path / "a")})
    assert_clear(e, str(raw), "truncated")

"""The user's own folder of images (fixed and pool layouts)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from protolib.data import load_dataset
from protolib.data.base import DatasetFilesError
from tests.datasets.builders import (
    _png,
    assert_clear,
    assert_deterministic,
    assert_disjoint,
    split_of,
)


def test_folder_fixed_layout_val_carved_from_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    for i in range(8):
        _png(tmp_path / "train" / f"n{i}.png", rng.integers(0, 256, (20, 24), dtype=np.uint8))
    for i in range(4):
        _png(tmp_path / "test" / "normal" / f"n{i}.png", rng.integers(0, 256, (20, 24), dtype=np.uint8))
        _png(tmp_path / "test" / "anomalous" / f"a{i}.png", rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    cfg = {"loader": "folder", "root": str(tmp_path), "candidates": 5}
    data = load_dataset(cfg)
    assert data.images.shape == (16, 20, 24, 3)  # native size; one colour file: all stored RGB
    assert load_dataset({**cfg, "color": "grey"}).images.shape == (16, 20, 24)
    split = split_of(data, "normal", cfg)
    assert len(split.train) == 8 and len(split.candidates) == 5
    assert np.bincount(split.val_labels).tolist() == [2, 2] and np.bincount(split.test_labels).tolist() == [2, 2]
    assert_disjoint(split)
    assert_deterministic(data, 0, cfg)
    # both parts given: used as they are
    for i in range(2):
        _png(tmp_path / "val" / "normal" / f"v{i}.png", rng.integers(0, 256, (20, 24), dtype=np.uint8))
        _png(tmp_path / "val" / "anomalous" / f"w{i}.png", rng.integers(0, 256, (20, 24), dtype=np.uint8))
    data = load_dataset(cfg)
    split = split_of(data, 0, cfg)
    assert sorted(data.meta["path"][split.val_ids].tolist()) == [
        "val/anomalous/w0.png",
        "val/anomalous/w1.png",
        "val/normal/v0.png",
        "val/normal/v1.png",
    ]
    assert len(split.test_ids) == 8


def test_folder_pool_layout_formats_and_errors(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(9)
    (tmp_path / "normal").mkdir()
    for i in range(12):  # PNG, JPEG and TIFF files of different sizes
        ext = (".png", ".jpg", ".tif")[i % 3]
        Image.fromarray(rng.integers(0, 256, (30 + i, 40), dtype=np.uint8)).save(tmp_path / "normal" / f"{i}{ext}")
    cfg = {"loader": "folder", "root": str(tmp_path), "split": {"train": 0.5}}
    with pytest.raises(DatasetFilesError) as e:  # sizes differ and no image_size
        load_dataset(cfg)
    assert_clear(e, "image_size", str(tmp_path / "normal"))
    cfg["image_size"] = 16
    data = load_dataset(cfg)
    assert data.images.shape == (12, 16, 16)
    with pytest.raises(ValueError) as e:  # no anomalies known: val/test cannot measure AUROC
        split_of(data, 0, cfg)
    assert_clear(e, "anomalous", "root/anomalous/")
    for i in range(4):
        _png(tmp_path / "anomalous" / f"a{i}.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    data = load_dataset(cfg)
    split = split_of(data, 0, cfg)
    assert len(split.train) == 6 and np.bincount(split.val_labels).tolist() == [3, 2]
    assert np.bincount(split.test_labels).tolist() == [3, 2]
    assert_disjoint(split)
    with pytest.raises(ValueError) as e:
        split_of(data, 0, {**cfg, "split": {"train": 4000}})
    assert_clear(e, "12 normal images; split.train = 4000 leaves none for val and test (need at least 2)", "fraction")
    bad = tmp_path / "anomalous" / "a2.png"
    bad.write_bytes(bad.read_bytes()[:70])  # a truncated PNG
    with pytest.raises(DatasetFilesError) as e:
        load_dataset(cfg)
    assert_clear(e, str(bad), "truncated")
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "folder", "root": str(tmp_path / "normal")})
    assert_clear(e, "neither a train/ nor a normal/ folder", "root/test/{normal,anomalous}/")
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "folder", "root": None})
    assert_clear(e, "no root given")


def test_folder_names_the_files_it_does_not_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A .webp or .pgm export beside the PNGs is not read: the set is smaller than the folder, said in the log."""
    rng = np.random.default_rng(3)
    for i in range(3):
        _png(tmp_path / "train" / f"n{i}.png", rng.integers(0, 256, (8, 8), dtype=np.uint8))
    (tmp_path / "train" / "n3.webp").write_bytes(b"RIFF\x00\x00\x00\x00WEBP")
    (tmp_path / "train" / "n4.pgm").write_bytes(b"P5 8 8 255\n" + bytes(64))
    with caplog.at_level("WARNING", logger="protolib"):
        data = load_dataset({"loader": "folder", "root": str(tmp_path), "candidates": 2})
    assert len(data) == 3
    assert (
        "2 file(s) under" in caplog.text and "n3.webp, n4.pgm" in caplog.text and str(tmp_path / "train") in caplog.text
    )


def test_folder_names_hidden_and_multi_frame_files_and_unreadable_folders(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same listing as ``protolib rank``: hidden entries skipped and named, a multi-page TIFF
    read by its first page and named, a subfolder that cannot be listed an error naming it."""
    from PIL import Image

    rng = np.random.default_rng(4)
    for name in ("n0.png", "n1.png", ".n2.png", ".cache/n3.png", "sub/n4.png"):
        _png(tmp_path / "train" / name, rng.integers(0, 256, (8, 8), dtype=np.uint8))
    pages = [Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)) for _ in range(2)]
    pages[0].save(tmp_path / "train" / "stack.tif", save_all=True, append_images=pages[1:])
    cfg = {"loader": "folder", "root": str(tmp_path), "candidates": 2}
    with caplog.at_level("WARNING", logger="protolib"):
        data = load_dataset(cfg)
    assert sorted(data.meta["path"].tolist()) == ["train/n0.png", "train/n1.png", "train/stack.tif", "train/sub/n4.png"]
    assert "2 hidden file(s) or folder(s)" in caplog.text and ".cache, .n2.png" in caplog.text
    assert "only the first is read: stack.tif" in caplog.text
    scandir, locked = os.scandir, tmp_path / "train" / "sub"

    def denied(path: str | os.PathLike[str] = ".") -> os.ScandirIterator:  # as without read permission
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(DatasetFilesError) as e:
        load_dataset(cfg)
    assert_clear(e, str(locked), "Permission denied")

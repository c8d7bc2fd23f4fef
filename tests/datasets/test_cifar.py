"""CIFAR-10 / CIFAR-100 (superclasses) from Python-2 pickles in the official layout."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protolib.data import load_dataset
from protolib.data.base import DatasetFilesError
from protolib.data.cifar import (
    CIFAR10_CLASSES,
    CIFAR100_COARSE_CLASSES,
    CIFAR100_FINE_CLASSES,
    FINE_TO_COARSE,
)
from tests.datasets.builders import (
    assert_clear,
    assert_deterministic,
    assert_disjoint,
    split_of,
)


class Py2Str(bytes):
    """A Python 2 ``str``: the official CIFAR pickles were written by Python 2 (cPickle)."""


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes Py2Str with the BINSTRING opcodes Python 2 used, so the files load as the official ones:
    ``pickle.load(f, encoding='bytes')`` gives keys b'data', ``encoding='latin1'`` gives 'data'."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_py2str(self, obj: Py2Str) -> None:
        data = bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[Py2Str] = save_py2str


def py2_dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        Py2Pickler(fh, protocol=2).dump(obj)


def S(text: str) -> Py2Str:
    return Py2Str(text.encode())


def make_cifar10(root: Path, per_class_per_batch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """cifar-10-batches-py/ with data_batch_1..5, test_batch, batches.meta; returns the rows in loader order."""
    rng = np.random.default_rng(10)
    folder = root / "cifar-10-batches-py"
    xs, ys = [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        y = rng.permutation(np.repeat(np.arange(10), per_class_per_batch))
        x = rng.integers(0, 256, size=(len(y), 3072), dtype=np.uint8)
        py2_dump(
            folder / name,
            {
                S("batch_label"): S(f"{name} of 6"),
                S("labels"): [int(v) for v in y],
                S("data"): x,
                S("filenames"): [S(f"img_{name}_{i}.png") for i in range(len(y))],
            },
        )
        xs.append(x)
        ys.append(y)
    py2_dump(
        folder / "batches.meta",
        {
            S("num_cases_per_batch"): 10 * per_class_per_batch,
            S("label_names"): [S(n) for n in CIFAR10_CLASSES],
            S("num_vis"): 3072,
        },
    )
    return np.concatenate(xs), np.concatenate(ys)


def make_cifar100(root: Path, per_fine: tuple[int, int] = (1, 1)) -> np.ndarray:
    """cifar-100-python/ with train, test (fine and coarse labels) and meta; returns the fine labels."""
    rng = np.random.default_rng(100)
    folder = root / "cifar-100-python"
    fines = []
    for name, per in zip(("train", "test"), per_fine, strict=True):
        fine = rng.permutation(np.repeat(np.arange(100), per))
        x = rng.integers(0, 256, size=(len(fine), 3072), dtype=np.uint8)
        py2_dump(
            folder / name,
            {
                S("filenames"): [S(f"{i}.png") for i in range(len(fine))],
                S("batch_label"): S(name),
                S("fine_labels"): [int(v) for v in fine],
                S("coarse_labels"): [int(v) for v in FINE_TO_COARSE[fine]],
                S("data"): x,
            },
        )
        fines.append(fine)
    py2_dump(
        folder / "meta",
        {
            S("fine_label_names"): [S(n) for n in CIFAR100_FINE_CLASSES],
            S("coarse_label_names"): [S(n) for n in CIFAR100_COARSE_CLASSES],
        },
    )
    return np.concatenate(fines)


#: the superclasses as the CIFAR web page lists them (https://www.cs.toronto.edu/~kriz/cifar.html)
OFFICIAL_SUPERCLASSES = {
    "aquatic_mammals": ["beaver", "dolphin", "otter", "seal", "whale"],
    "fish": ["aquarium_fish", "flatfish", "ray", "shark", "trout"],
    "flowers": ["orchid", "poppy", "rose", "sunflower", "tulip"],
    "food_containers": ["bottle", "bowl", "can", "cup", "plate"],
    "fruit_and_vegetables": ["apple", "mushroom", "orange", "pear", "sweet_pepper"],
    "household_electrical_devices": ["clock", "keyboard", "lamp", "telephone", "television"],
    "household_furniture": ["bed", "chair", "couch", "table", "wardrobe"],
    "insects": ["bee", "beetle", "butterfly", "caterpillar", "cockroach"],
    "large_carnivores": ["bear", "leopard", "lion", "tiger", "wolf"],
    "large_man-made_outdoor_things": ["bridge", "castle", "house", "road", "skyscraper"],
    "large_natural_outdoor_scenes": ["cloud", "forest", "mountain", "plain", "sea"],
    "large_omnivores_and_herbivores": ["camel", "cattle", "chimpanzee", "elephant", "kangaroo"],
    "medium_mammals": ["fox", "porcupine", "possum", "raccoon", "skunk"],
    "non-insect_invertebrates": ["crab", "lobster", "snail", "spider", "worm"],
    "people": ["baby", "boy", "girl", "man", "woman"],
    "reptiles": ["crocodile", "dinosaur", "lizard", "snake", "turtle"],
    "small_mammals": ["hamster", "mouse", "rabbit", "shrew", "squirrel"],
    "trees": ["maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"],
    "vehicles_1": ["bicycle", "bus", "motorcycle", "pickup_truck", "train"],
    "vehicles_2": ["lawn_mower", "rocket", "streetcar", "tank", "tractor"],
}


def test_cifar100_fine_to_coarse_table_is_the_official_one() -> None:
    assert FINE_TO_COARSE.shape == (100,)
    assert list(OFFICIAL_SUPERCLASSES) == CIFAR100_COARSE_CLASSES
    assert sorted(CIFAR100_FINE_CLASSES) == CIFAR100_FINE_CLASSES  # official fine order is alphabetical
    for coarse, members in OFFICIAL_SUPERCLASSES.items():
        for fine in members:
            assert CIFAR100_COARSE_CLASSES[FINE_TO_COARSE[CIFAR100_FINE_CLASSES.index(fine)]] == coarse, fine
    assert np.bincount(FINE_TO_COARSE).tolist() == [5] * 20


def test_py2_pickles_load_like_the_official_files(tmp_path: Path) -> None:
    make_cifar10(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as fh:
        as_bytes = pickle.load(fh, encoding="bytes")
    assert {b"data", b"labels", b"batch_label", b"filenames"} == set(as_bytes)


def test_cifar10_loads_and_splits_one_vs_rest(tmp_path: Path) -> None:
    x, y = make_cifar10(tmp_path)
    cfg = {
        "loader": "cifar10",
        "root": str(tmp_path),
        "split": {"train": 6, "anomalies_per_other_class": 1.0},
        "candidates": 4,
    }
    data = load_dataset(cfg)
    assert data.images.shape == (120, 32, 32, 3) and data.images.dtype == np.uint8
    assert np.array_equal(data.labels, y)
    # row layout: 1024 R, 1024 G, 1024 B values, row-major 32x32
    assert np.array_equal(data.images[7, 2, 5], x[7].reshape(3, 32, 32)[:, 2, 5])
    split = split_of(data, "cat", cfg)
    assert len(split.train) == 6 and np.all(data.labels[split.train] == 3)
    assert len(split.candidates) == 4
    assert (split.val_labels == 0).sum() == 3 and (split.val_labels == 1).sum() == 27  # 3 from each other class
    assert np.array_equal(split.val_labels, (data.labels[split.val_ids] != 3).astype(int))
    assert np.array_equal(split.test_labels, (data.labels[split.test_ids] != 3).astype(int))
    assert_disjoint(split)
    assert_deterministic(data, "cat", cfg)
    # the root may also be the batches folder itself
    assert len(load_dataset({**cfg, "root": str(tmp_path / "cifar-10-batches-py")})) == 120


def test_cifar_reader_matches_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """torchvision reads the same files to the same arrays (its md5 check, which rejects any copy but
    the official one, switched off here)."""
    import torchvision.datasets.cifar as tv_cifar

    make_cifar10(tmp_path)
    fines = make_cifar100(tmp_path)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    for cls, loader, n_train in ((tv_cifar.CIFAR10, "cifar10", 100), (tv_cifar.CIFAR100, "cifar100", 100)):
        ours = load_dataset({"loader": loader, "root": str(tmp_path)})
        train, test = cls(str(tmp_path), train=True), cls(str(tmp_path), train=False)
        assert np.array_equal(ours.images, np.concatenate([train.data, test.data]))
        targets = np.asarray(train.targets + test.targets)
        assert len(train.data) == n_train
        if loader == "cifar100":
            assert np.array_equal(ours.meta["fine_label"], targets) and np.array_equal(targets, fines)
            assert np.array_equal(ours.labels, FINE_TO_COARSE[targets])
            assert train.classes == CIFAR100_FINE_CLASSES
        else:
            assert np.array_equal(ours.labels, targets)
            assert train.classes == CIFAR10_CLASSES


def test_cifar100_uses_the_20_superclasses(tmp_path: Path) -> None:
    fines = make_cifar100(tmp_path)
    cfg = {
        "loader": "cifar100",
        "root": str(tmp_path),
        "split": {"train": 4, "anomalies_per_other_class": 1.0},
        "candidates": 4,  # every training image (more is refused: no silent cap)
    }
    data = load_dataset(cfg)
    assert data.class_names == CIFAR100_COARSE_CLASSES
    assert np.array_equal(data.labels, FINE_TO_COARSE[fines])
    assert np.bincount(data.labels).tolist() == [10] * 20  # 5 fine classes x (1 train + 1 test)
    split = split_of(data, "people", cfg)
    people = [CIFAR100_FINE_CLASSES.index(n) for n in OFFICIAL_SUPERCLASSES["people"]]
    assert np.isin(data.meta["fine_label"][split.train], people).all()
    assert len(split.train) == 4 and len(split.candidates) == 4
    assert (split.val_labels == 0).sum() == 3 and (split.val_labels == 1).sum() == 3 * 19
    assert_disjoint(split)


def test_cifar_errors_name_the_folder_and_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "cifar10", "root": str(tmp_path / "nowhere")})
    assert_clear(e, str(tmp_path / "nowhere"), "cifar-10-batches-py", "data_batch_1", "download: true")
    make_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError) as e:  # DatasetFilesError is a FileNotFoundError too
        load_dataset({"loader": "cifar10", "root": str(tmp_path)})
    assert_clear(e, str(folder), "lacks data_batch_3")
    make_cifar10(tmp_path)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:500])  # truncated copy
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "cifar10", "root": str(tmp_path)})
    assert_clear(e, str(folder / "test_batch"), "not a readable CIFAR pickle")
    py2_dump(folder / "test_batch", {S("labels"): [0, 1], S("data"): np.zeros((2, 100), dtype=np.uint8)})
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "cifar10", "root": str(tmp_path)})
    assert_clear(e, str(folder / "test_batch"), "(N, 3072) uint8")
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "cifar100", "root": str(tmp_path)})  # CIFAR-10 files only
    assert_clear(e, "cifar-100-python", "train, test")


def test_cifar_download_failure_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets as tvd

    def offline(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Error downloading cifar-10-python.tar.gz")

    monkeypatch.setattr(tvd, "CIFAR10", offline)
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "cifar10", "root": str(tmp_path / "dl"), "download": True})
    assert_clear(e, "download into", str(tmp_path / "dl"), "cifar-10-batches-py")


def test_cifar_missing_class_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    make_cifar10(tmp_path)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        y = np.arange(20) % 9  # no truck
        py2_dump(folder / name, {S("labels"): [int(v) for v in y], S("data"): np.zeros((20, 3072), dtype=np.uint8)})
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "cifar10", "root": str(tmp_path)})
    assert_clear(e, "no images of class truck (9)", str(folder))

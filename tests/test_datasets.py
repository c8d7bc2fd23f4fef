"""The paper's datasets, each from a tiny copy in its OFFICIAL on-disk format built here.

None of CIFAR-10/100, MNIST (full), MVTec-AD, BraTS, RSNA or CheXpert can be downloaded on these
machines, so every test writes a reduced copy in the real format (Python-2 style CIFAR pickles,
MNIST IDX files in torchvision's raw folder, MVTec folders of PNG textures with drawn defects and
masks, BraTS NIfTI volumes built from a real brain template, RSNA CSVs + DICOM files rewritten
from pydicom's own test files, CheXpert CSV + images, a user folder) and runs it through the
loader and the split protocol: sizes, disjointness, label mapping, determinism for the seed, and
one clear error (naming the file or folder, no chained traceback) for each broken input.
"""

from __future__ import annotations

import copy
import gzip
import pickle
import shutil
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from protolib.data import DATASETS, ImageDataset, load_dataset
from protolib.data.base import CLASS_NAMES, SPLIT_PROTOCOLS
from protolib.data.cifar import CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES, CIFAR10_CLASSES, FINE_TO_COARSE
from protolib.data.images import DatasetFilesError, center_crop_square, resize
from protolib.data.splits import Split, one_vs_rest_split
from protolib.pipeline import make_split, prepare_dataset

REPO = Path(__file__).resolve().parents[1]
PAPER_DATASETS = ["cifar10", "cifar100", "mnist", "fashion_mnist", "mvtec", "brats", "rsna", "chexpert"]


# ----------------------------------------------------------------------------- shared checks
def assert_clear(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    """The error names what it must, and carries no chained traceback (``raise ... from None``)."""
    err = excinfo.value
    message = str(err)
    for needle in needles:
        assert needle in message, f"{needle!r} not in error message: {message}"
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__), (
        f"error chains another exception (a deep traceback): {err.__context__!r}"
    )
    return message


def split_of(data: ImageDataset, cls: int | str, cfg: dict[str, Any], seed: int = 0, key: str = "ds") -> Split:
    """The split the ``split`` rule builds: the dataset's own protocol, else one-vs-rest."""
    idx = data.class_index(cls)
    protocol = SPLIT_PROTOCOLS.get(cfg["loader"])
    if protocol is not None:
        split = protocol(data, idx, cfg, seed, key)
    else:
        split = one_vs_rest_split(
            data.labels, idx, dataset=key, class_name=data.class_names[idx], train=cfg["split"]["train"],
            anomalies_per_other_class=cfg["split"]["anomalies_per_other_class"], candidates=cfg["candidates"], seed=seed,
        )
    split.check()
    return split


def assert_disjoint(split: Split) -> None:
    for a, b in [(split.train, split.val_ids), (split.train, split.test_ids), (split.val_ids, split.test_ids)]:
        assert np.intersect1d(a, b).size == 0
    assert np.isin(split.candidates, split.train).all()
    assert len(np.unique(split.candidates)) == len(split.candidates)


def assert_deterministic(data: ImageDataset, cls: int | str, cfg: dict[str, Any]) -> None:
    a, b = split_of(data, cls, cfg, seed=3), split_of(data, cls, cfg, seed=3)
    assert a.to_dict() == b.to_dict()
    c = split_of(data, cls, cfg, seed=4)
    assert a.to_dict() != c.to_dict(), "another seed must give another split"


# ----------------------------------------------------------------------------- registration, paper config
def test_every_paper_dataset_is_registered_with_its_classes() -> None:
    for name in PAPER_DATASETS + ["folder"]:
        assert name in DATASETS
    assert CLASS_NAMES["cifar10"] == CIFAR10_CLASSES
    assert CLASS_NAMES["cifar100"] == CIFAR100_COARSE_CLASSES and len(CIFAR100_COARSE_CLASSES) == 20
    assert CLASS_NAMES["mnist"] == [str(d) for d in range(10)]
    assert CLASS_NAMES["mvtec"] == [
        "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw",
        "tile", "toothbrush", "transistor", "wood", "zipper",
    ]  # fmt: skip
    for name in ("brats", "rsna", "chexpert", "folder"):
        assert CLASS_NAMES[name] == ["normal"]
        assert name in SPLIT_PROTOCOLS
    assert "mvtec" in SPLIT_PROTOCOLS
    for name in ("cifar10", "cifar100", "mnist"):
        assert name not in SPLIT_PROTOCOLS  # the paper's one-vs-rest protocol


#: the dataset keys this module reads, proposed for $defs.dataset in config.schema.yaml
PROPOSED_SCHEMA = """
image_size:
  type: integer
  minimum: 8
  description: "side of the stored square images; default per loader: mvtec 256, brats/rsna/chexpert 128, folder: the native size (all images must then share it)"
slices:
  type: integer
  minimum: 1
  description: "brats: axial slices per volume around the centre line (paper: 5)"
color:
  enum: [auto, grey, rgb]
  description: "folder: stored channels (auto: grey when every file is grey, else RGB)"
split:
  val_fraction:
    type: number
    exclusiveMinimum: 0
    exclusiveMaximum: 1
    description: "mvtec, folder: share of the held-out images (per defect type / label) that forms val; the rest is test (default 0.5)"
  val_size:
    type: integer
    minimum: 2
    description: "brats, rsna, chexpert: val images, balanced over label (brats) or sex x age group x label (rsna, chexpert); default brats 80, rsna/chexpert 800"
  test_size:
    type: integer
    minimum: 2
    description: "as val_size, for the test set"
  max_train:
    type: [integer, "null"]
    minimum: 1
    description: "brats, rsna, chexpert: draw at most this many of the remaining normal images for training (null: all, the paper's protocol)"
"""


def schema_with_proposed_keys() -> dict[str, Any]:
    from importlib import resources

    full = yaml.safe_load(resources.files("protolib").joinpath("schemas/config.schema.yaml").read_text())
    proposed = yaml.safe_load(PROPOSED_SCHEMA)
    dataset = full["$defs"]["dataset"]["properties"]
    for key, value in proposed.items():
        if key == "split":
            for sub, spec in value.items():
                dataset["split"]["properties"].setdefault(sub, spec)
        else:
            dataset.setdefault(key, value)
    return full


def test_paper_config_describes_the_whole_study() -> None:
    import jsonschema

    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    errors = list(jsonschema.Draft202012Validator(schema_with_proposed_keys()).iter_errors(copy.deepcopy(config)))
    assert not errors, [e.message for e in errors]
    assert set(config["datasets"]) == set(PAPER_DATASETS)
    for key, ds in config["datasets"].items():
        assert ds.get("loader", key) in DATASETS
    assert config["selection"]["M"] == [1, 5, 10, 25]
    assert config["selection"]["random"]["repeats"] == 10
    assert {(r["dataset"], r["model"]) for r in config["runs"]} == {
        ("cifar10", "panda"), ("cifar100", "panda"), ("mnist", "panda"), ("fashion_mnist", "panda"),
        ("mvtec", "patchcore"), ("brats", "fae"), ("rsna", "fae"), ("rsna", "rd"), ("chexpert", "fae"),
    }  # fmt: skip
    models = config["models"]
    assert models["panda"] == {"detector": "panda", "backbone": "resnet152", "weights": "imagenet"}
    assert models["patchcore"] == {"detector": "patchcore", "backbone": "wide_resnet50_2", "weights": "imagenet"}
    assert models["fae"] == {"detector": "fae", "backbone": "resnet18", "weights": "imagenet"}
    assert models["rd"] == {"detector": "rd", "backbone": "wide_resnet50_2", "weights": "imagenet"}
    # 4000 of 6000-7000 per class; CIFAR100's superclasses have 3000 images, two thirds train
    for key, train in (("cifar10", 4000), ("cifar100", 2000), ("mnist", 4000), ("fashion_mnist", 4000)):
        assert config["datasets"][key]["split"]["train"] == train
        assert config["datasets"][key]["candidates"] == 300
    assert config["datasets"]["rsna"]["split"]["val_size"] == 800
    assert config["datasets"]["brats"]["split"]["val_size"] == 80


# ----------------------------------------------------------------------------- CIFAR
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
        py2_dump(folder / name, {
            S("batch_label"): S(f"{name} of 6"), S("labels"): [int(v) for v in y], S("data"): x,
            S("filenames"): [S(f"img_{name}_{i}.png") for i in range(len(y))],
        })
        xs.append(x)
        ys.append(y)
    py2_dump(folder / "batches.meta", {
        S("num_cases_per_batch"): 10 * per_class_per_batch, S("label_names"): [S(n) for n in CIFAR10_CLASSES],
        S("num_vis"): 3072,
    })
    return np.concatenate(xs), np.concatenate(ys)


def make_cifar100(root: Path, per_fine: tuple[int, int] = (1, 1)) -> np.ndarray:
    """cifar-100-python/ with train, test (fine and coarse labels) and meta; returns the fine labels."""
    rng = np.random.default_rng(100)
    folder = root / "cifar-100-python"
    fines = []
    for name, per in zip(("train", "test"), per_fine, strict=True):
        fine = rng.permutation(np.repeat(np.arange(100), per))
        x = rng.integers(0, 256, size=(len(fine), 3072), dtype=np.uint8)
        py2_dump(folder / name, {
            S("filenames"): [S(f"{i}.png") for i in range(len(fine))], S("batch_label"): S(name),
            S("fine_labels"): [int(v) for v in fine], S("coarse_labels"): [int(v) for v in FINE_TO_COARSE[fine]],
            S("data"): x,
        })
        fines.append(fine)
    py2_dump(folder / "meta", {
        S("fine_label_names"): [S(n) for n in CIFAR100_FINE_CLASSES],
        S("coarse_label_names"): [S(n) for n in CIFAR100_COARSE_CLASSES],
    })
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
    cfg = {"loader": "cifar10", "root": str(tmp_path), "split": {"train": 6, "anomalies_per_other_class": 1.0},
           "candidates": 4}
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
    cfg = {"loader": "cifar100", "root": str(tmp_path), "split": {"train": 4, "anomalies_per_other_class": 1.0},
           "candidates": 300}
    data = load_dataset(cfg)
    assert data.class_names == CIFAR100_COARSE_CLASSES
    assert np.array_equal(data.labels, FINE_TO_COARSE[fines])
    assert np.bincount(data.labels).tolist() == [10] * 20  # 5 fine classes x (1 train + 1 test)
    split = split_of(data, "people", cfg)
    people = [CIFAR100_FINE_CLASSES.index(n) for n in OFFICIAL_SUPERCLASSES["people"]]
    assert np.isin(data.meta["fine_label"][split.train], people).all()
    assert len(split.train) == 4 and len(split.candidates) == 4  # K = min(candidates, |train|)
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


# ----------------------------------------------------------------------------- MNIST
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
    cfg = {"loader": "mnist", "root": str(tmp_path), "split": {"train": 3, "anomalies_per_other_class": 1.0},
           "candidates": 2}
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


# ----------------------------------------------------------------------------- MVTec-AD
@pytest.fixture(scope="module")
def textures() -> dict[str, np.ndarray]:
    import skimage.data

    return {name: getattr(skimage.data, name)() for name in ("brick", "grass", "gravel")}


def _png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def make_mvtec(root: Path, textures: dict[str, np.ndarray], size: int = 64) -> None:
    """carpet (colour, from brick) and grid (grey, from gravel): 6 train/good, test good 4, cut 3, hole 3."""
    rng = np.random.default_rng(5)
    for category, texture, colour in (("carpet", "brick", True), ("grid", "gravel", False)):
        source = textures[texture]

        def crop(source: np.ndarray = source, colour: bool = colour) -> np.ndarray:
            top, left = rng.integers(0, source.shape[0] - size, size=2)
            patch = source[top : top + size, left : left + size]
            if colour:  # a tinted RGB texture
                patch = np.stack([patch, (patch * 0.8).astype(np.uint8), (patch * 0.5).astype(np.uint8)], axis=-1)
            return np.ascontiguousarray(patch)

        for i in range(6):
            _png(root / category / "train" / "good" / f"{i:03d}.png", crop())
        for i in range(4):
            _png(root / category / "test" / "good" / f"{i:03d}.png", crop())
        for defect in ("cut", "hole"):
            for i in range(3):
                image, mask = crop(), np.zeros((size, size), dtype=np.uint8)
                r, c = rng.integers(8, size - 24, size=2)
                if defect == "cut":
                    mask[r : r + 16, c : c + 3] = 255
                    image[mask > 0] = 0
                else:
                    yy, xx = np.ogrid[:size, :size]
                    mask[(yy - r - 8) ** 2 + (xx - c - 8) ** 2 <= 36] = 255
                    image[mask > 0] = 255
                _png(root / category / "test" / defect / f"{i:03d}.png", image)
                _png(root / category / "ground_truth" / defect / f"{i:03d}_mask.png", mask)


def test_mvtec_official_folders_and_split(tmp_path: Path, textures: dict[str, np.ndarray]) -> None:
    make_mvtec(tmp_path, textures)
    cfg = {"loader": "mvtec", "root": str(tmp_path), "classes": ["carpet", "grid"], "image_size": 32,
           "split": {"val_fraction": 0.5}, "candidates": 4}
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
    config = {"seed": 1, "datasets": {"mv": {"loader": "mvtec", "root": str(tmp_path / "mvtec"), "classes": ["grid"],
                                             "image_size": 24, "split": {}, "candidates": 300}}}
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


# ----------------------------------------------------------------------------- BraTS
TEMPLATE = Path("/usr/share/mricron/templates/ch2bet.nii.gz")


@pytest.fixture(scope="module")
def brain() -> tuple[np.ndarray, np.ndarray]:
    """A real skull-stripped T1 brain (mricron-data), reduced; a synthetic head when it is missing."""
    import nibabel as nib

    if TEMPLATE.is_file():
        img = nib.load(str(TEMPLATE))
        volume = np.asanyarray(img.dataobj)[::3, ::3, :].astype(np.float32)
        affine = img.affine @ np.diag([3.0, 3.0, 1.0, 1.0])
    else:  # an ellipsoid "brain" with some texture
        xx, yy, zz = np.mgrid[:61, :73, :60]
        inside = ((xx - 30) / 25.0) ** 2 + ((yy - 36) / 30.0) ** 2 + ((zz - 30) / 25.0) ** 2 < 1
        volume = np.where(inside, 100 + 50 * np.cos(xx / 3.0) * np.sin(yy / 4.0), 0).astype(np.float32)
        affine = np.diag([3.0, 3.0, 1.0, 1.0])
    c = volume.shape[2] // 2
    return volume[:, :, c - 8 : c + 9], affine  # 17 axial slices, the centre one at index 8


def make_brats(root: Path, brain: tuple[np.ndarray, np.ndarray], n_patients: int = 8) -> None:
    """Patients 1-4 have a lesion in slices 7-9 (of the 5 centre slices 6-10); 5-8 are healthy.
    Patient 8's segmentation has BraTS20_Training_355's odd name."""
    import nibabel as nib

    volume, affine = brain
    rng = np.random.default_rng(2)
    nx, ny, _ = volume.shape
    for i in range(1, n_patients + 1):
        name = f"BraTS20_Training_{i:03d}"
        t2 = volume * (1 + 0.05 * i) + rng.normal(0, 1, volume.shape) * (volume > 0)
        seg = np.zeros(volume.shape, dtype=np.uint8)
        if i <= 4:
            xx, yy = np.ogrid[:nx, :ny]
            disc = (xx - nx // 2 - i) ** 2 + (yy - ny // 2) ** 2 <= 25
            for z, label in ((7, 2), (8, 4), (9, 1)):
                seg[:, :, z][disc] = label
                t2[:, :, z][disc] *= 1.8
        folder = root / name
        folder.mkdir(parents=True)
        nib.save(nib.Nifti1Image(t2.astype(np.int16), affine), str(folder / f"{name}_t2.nii.gz"))
        seg_name = "W39_1998.09.19_Segm.nii" if i == 8 else f"{name}_seg.nii.gz"
        nib.save(nib.Nifti1Image(seg, affine), str(folder / seg_name))
        nib.save(nib.Nifti1Image(t2.astype(np.int16) // 2, affine), str(folder / f"{name}_flair.nii.gz"))
    (root / "name_mapping.csv").write_text("BraTS_2020_subject_ID\n")  # files beside the folders are ignored


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
    assert len(split.val_ids) == 8 and split.val_labels.sum() == 4 and len(split.test_ids) == 8 and split.test_labels.sum() == 4
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


# ----------------------------------------------------------------------------- RSNA
def dicom_template() -> Path:
    """A real DICOM file shipped inside pydicom (listed directly: get_testdata_files() needs the network)."""
    import pydicom

    return Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"


def write_dicom(path: Path, pixels: np.ndarray, sex: str, age: str, pid: str) -> None:
    import pydicom

    ds = pydicom.dcmread(str(dicom_template()))
    with warnings.catch_warnings():  # RSNA's plain '51' is not a valid DICOM age string: as in the real files
        warnings.simplefilter("ignore", UserWarning)
        ds.PatientID, ds.PatientName, ds.PatientSex, ds.PatientAge = pid, pid, sex, age
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path))


#: (sex, age) per demographic cell; ages as RSNA writes them (plain years) and as DICOM 'AS' strings
CELLS = [("M", "25"), ("M", "070Y"), ("F", "019Y"), ("F", "75")]


def make_rsna(root: Path, per_cell: int = 3) -> dict[str, dict[str, Any]]:
    """Per (sex x age group x label) cell ``per_cell`` patients, plus middle-aged ones (train only or
    excluded) and one of sex 'O'; 48x64 pixels (so the centre crop matters). Returns patient -> facts."""
    rng = np.random.default_rng(3)
    patients: dict[str, dict[str, Any]] = {}
    anomaly_kinds = ["Lung Opacity", "No Lung Opacity / Not Normal"]
    specs = [(s, a, label) for s, a in CELLS for label in ("Normal", "anomalous") for _ in range(per_cell)]
    specs += [("M", "45", "Normal"), ("F", "45", "Normal"), ("F", "50", "Normal"), ("M", "33", "Normal"),
              ("F", "45", "anomalous"), ("M", "50", "anomalous"), ("O", "25", "Normal")]
    for i, (sex, age, label) in enumerate(specs):
        pid = f"{i:04d}abcd-{rng.integers(1e6):06d}"
        cls = anomaly_kinds[i % 2] if label == "anomalous" else "Normal"
        pixels = rng.integers(0, 256, size=(48, 64), dtype=np.uint8)
        write_dicom(root / "stage_2_train_images" / f"{pid}.dcm", pixels, sex, age, pid)
        patients[pid] = {"class": cls, "sex": sex, "age": age, "pixels": pixels}
    info, boxes = ["patientId,class"], ["patientId,x,y,width,height,Target"]
    for pid, p in patients.items():
        n_boxes = 2 if p["class"] == "Lung Opacity" else 1  # one row per box, as in the official files
        info += [f"{pid},{p['class']}"] * n_boxes
        boxes += [f"{pid},100,200,50,60,1" if p["class"] == "Lung Opacity" else f"{pid},,,,,0"] * n_boxes
    (root / "stage_2_detailed_class_info.csv").write_text("\n".join(info) + "\n")
    (root / "stage_2_train_labels.csv").write_text("\n".join(boxes) + "\n")
    return patients


def check_balanced(data: ImageDataset, ids: np.ndarray, per_cell: int) -> None:
    """Equally many images per sex x age group x label cell; nobody middle-aged or of unknown sex."""
    from protolib.data.medical import age_groups

    group = age_groups(data.meta["age"])
    assert set(group[ids].tolist()) <= {"young", "old"} and set(data.meta["sex"][ids].tolist()) <= {"M", "F"}
    cells: dict[tuple, int] = {}
    for i in ids:
        key = (data.meta["sex"][i], group[i], bool(data.meta["anomalous"][i]))
        cells[key] = cells.get(key, 0) + 1
    assert len(cells) == 8 and set(cells.values()) == {per_cell}


def test_rsna_dicoms_demographics_and_balanced_split(tmp_path: Path) -> None:
    patients = make_rsna(tmp_path)
    cfg = {"loader": "rsna", "root": str(tmp_path), "image_size": 32,
           "split": {"val_size": 8, "test_size": 8}, "candidates": 100000}
    data = load_dataset(cfg)
    assert data.images.shape == (31, 32, 32) and data.class_names == ["normal"]
    pids = data.meta["patient"].tolist()
    assert pids == list(patients)  # one image per patient, in file order, despite the repeated box rows
    assert data.meta["anomalous"].tolist() == [patients[p]["class"] != "Normal" for p in pids]
    assert data.meta["finding"].tolist() == [patients[p]["class"] for p in pids]
    assert data.meta["sex"].tolist() == [{"O": ""}.get(patients[p]["sex"], patients[p]["sex"]) for p in pids]
    assert data.meta["age"][:6].tolist() == [25.0] * 6 and data.meta["age"][6] == 70.0  # '070Y' -> 70
    first = patients[pids[0]]["pixels"]
    assert np.array_equal(data.images[0], resize(center_crop_square(first), 32))  # centre crop, then resize
    split = split_of(data, "normal", cfg)
    check_balanced(data, split.val_ids, per_cell=1)
    check_balanced(data, split.test_ids, per_cell=1)
    assert len(split.val_ids) == 8 and len(split.test_ids) == 8
    normals = np.flatnonzero(~data.meta["anomalous"])
    assert np.array_equal(split.train, np.setdiff1d(normals, np.concatenate([split.val_ids, split.test_ids])))
    assert len(split.train) == 12 + 4 + 1 - 8 and len(split.candidates) == len(split.train)  # K = all (paper)
    assert_disjoint(split)
    assert_deterministic(data, 0, cfg)


def test_rsna_through_prepare_and_split_rules(tmp_path: Path) -> None:
    make_rsna(tmp_path / "rsna")
    config = {"seed": 0, "datasets": {"rsna": {"loader": "rsna", "root": str(tmp_path / "rsna"), "image_size": 16,
                                               "split": {"val_size": 8, "test_size": 16, "seed": 9}, "candidates": 3}}}
    prepare_dataset(config, "rsna", tmp_path / "rsna.npz")
    split = make_split(config, "rsna", 0, tmp_path / "rsna.npz", tmp_path / "rsna.json")
    data = ImageDataset.load(tmp_path / "rsna.npz")
    assert split.seed == 9 and len(split.test_ids) == 16 and len(split.candidates) == 3
    check_balanced(data, split.val_ids, per_cell=1)
    check_balanced(data, split.test_ids, per_cell=2)
    assert sorted(np.bincount(split.test_labels).tolist()) == [8, 8]


def test_rsna_png_images_with_metadata_csv(tmp_path: Path) -> None:
    patients = make_rsna(tmp_path, per_cell=2)
    rows = ["patientId,PatientSex,PatientAge"]
    for pid, p in patients.items():
        (tmp_path / "stage_2_train_images" / f"{pid}.dcm").unlink()
        _png(tmp_path / "stage_2_train_images" / f"{pid}.png", p["pixels"])
        rows.append(f"{pid},{p['sex']},{p['age']}")
    (tmp_path / "metadata.csv").write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(DatasetFilesError) as e:  # the last patient lacks demographics
        load_dataset({"loader": "rsna", "root": str(tmp_path), "image_size": 16})
    assert_clear(e, "metadata.csv", list(patients)[-1])
    (tmp_path / "metadata.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset({"loader": "rsna", "root": str(tmp_path), "image_size": 16})
    assert len(data) == len(patients) and data.meta["path"][0].endswith(".png")
    split = split_of(data, 0, {"loader": "rsna", "split": {"val_size": 8, "test_size": 8}})
    check_balanced(data, split.test_ids, per_cell=1)


def test_rsna_errors(tmp_path: Path) -> None:
    import pydicom

    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "rsna", "root": str(tmp_path)})
    assert_clear(e, str(tmp_path / "stage_2_detailed_class_info.csv"), "not found", "stage_2_train_images")
    patients = make_rsna(tmp_path, per_cell=2)
    data = load_dataset({"loader": "rsna", "root": str(tmp_path), "image_size": 16})
    with pytest.raises(ValueError) as e:  # 2 per cell cannot fill 2 + 2
        split_of(data, 0, {"loader": "rsna", "split": {"val_size": 16, "test_size": 16}})
    assert_clear(e, "(sex M, young, normal) has 2", "(sex F, old, anomalous) has 2", "2 + 2 = 4", "split.val_size = 16")
    with pytest.raises(ValueError) as e:
        split_of(data, 0, {"loader": "rsna", "split": {"val_size": 12}})
    assert_clear(e, "split.val_size = 12", "multiple of 8")
    pid = list(patients)[3]
    truncated = Path(pydicom.__file__).parent / "data" / "test_files" / "MR_truncated.dcm"
    shutil.copy(truncated, tmp_path / "stage_2_train_images" / f"{pid}.dcm")
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "rsna", "root": str(tmp_path)})
    assert_clear(e, str(tmp_path / "stage_2_train_images" / f"{pid}.dcm"), "not a readable DICOM")
    (tmp_path / "stage_2_train_images" / f"{pid}.dcm").unlink()
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "rsna", "root": str(tmp_path)})
    assert_clear(e, f"no image for patient {pid}", f"{pid}.dcm")
    info = tmp_path / "stage_2_detailed_class_info.csv"
    info.write_text(info.read_text().replace(",Lung Opacity\n", ",Opacity?\n"))
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "rsna", "root": str(tmp_path)})
    assert_clear(e, "unknown class", "Opacity?")


def test_age_and_sex_parsing() -> None:
    from protolib.data.medical import age_groups, parse_age, parse_sex

    assert parse_age("051Y") == 51 and parse_age("51") == 51 and parse_age(" 6M") == 0.5
    assert np.isnan(parse_age("")) and np.isnan(parse_age(None)) and np.isnan(parse_age("abc"))
    assert [parse_sex(s) for s in ("M", "f", "Male", "Female", "O", "Unknown", None)] == ["M", "F", "M", "F", "", "", ""]
    assert age_groups(np.array([31.9, 32, 60, 60.5, np.nan])).tolist() == ["young", "", "", "old", ""]


# ----------------------------------------------------------------------------- CheXpert
CHEXPERT_COLUMNS = [
    "Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly",
    "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax",
    "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices",
]  # fmt: skip


def make_chexpert(root: Path, per_cell: int = 2) -> list[str]:
    """root = .../CheXpert-v1.0-small with train.csv; returns the Paths the paper's filter keeps."""
    rng = np.random.default_rng(4)
    rows, kept = [], []

    def add(sex: str, age: int, view: str, labels: dict[str, float], keep: bool) -> None:
        n = len(rows) + 1
        rel = f"CheXpert-v1.0-small/train/patient{n:05d}/study1/view1_{view.lower()}.png"
        _png(root.parent / rel, rng.integers(0, 256, size=(40, 30), dtype=np.uint8))
        values = {c: "" for c in CHEXPERT_COLUMNS}
        values.update({"Path": rel, "Sex": sex, "Age": str(age), "Frontal/Lateral": view, "AP/PA": "AP"})
        values.update({k: str(v) for k, v in labels.items()})
        rows.append(",".join(values[c] for c in CHEXPERT_COLUMNS))
        if keep:
            kept.append(rel)

    for sex in ("Male", "Female"):
        for age in (20, 75):
            for i in range(per_cell):
                add(sex, age, "Frontal", {"No Finding": 1.0, "Support Devices": 0.0}, True)
                add(sex, age, "Frontal", {"Pneumonia": 1.0} if i % 2 else {"Lung Opacity": 1.0, "Edema": 0.0}, True)
    add("Male", 45, "Frontal", {"No Finding": 1.0}, True)  # middle-aged: train only
    add("Unknown", 20, "Frontal", {"No Finding": 1.0}, True)  # unknown sex: train only
    add("Male", 20, "Lateral", {"No Finding": 1.0}, False)  # lateral view
    add("Female", 75, "Frontal", {"No Finding": 1.0, "Support Devices": 1.0}, False)  # support devices
    add("Female", 20, "Frontal", {"No Finding": 1.0, "Cardiomegaly": -1.0}, False)  # an uncertain label
    add("Male", 75, "Frontal", {"Pneumonia": -1.0}, False)  # uncertain pneumonia
    add("Male", 75, "Frontal", {"Cardiomegaly": 1.0}, False)  # neither normal nor pneumonia / opacity
    (root / "train.csv").write_text(",".join(CHEXPERT_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    return kept


def test_chexpert_filters_and_balanced_split(tmp_path: Path) -> None:
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    kept = make_chexpert(root)
    cfg = {"loader": "chexpert", "root": str(root), "split": {"val_size": 8, "test_size": 8}, "candidates": 300}
    data = load_dataset(cfg)
    assert data.meta["path"].tolist() == kept and data.images.shape == (len(kept), 128, 128)
    assert data.meta["anomalous"].sum() == 8 and data.meta["sex"][-1] == ""
    assert set(data.meta["finding"].tolist()) == {"No Finding", "Pneumonia", "Lung Opacity"}
    split = split_of(data, 0, cfg)
    check_balanced(data, split.val_ids, per_cell=1)
    check_balanced(data, split.test_ids, per_cell=1)
    assert len(split.train) == 10 - 8 and not data.meta["anomalous"][split.train].any()
    assert_disjoint(split)
    assert_deterministic(data, 0, cfg)


def test_chexpert_errors(tmp_path: Path) -> None:
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "chexpert", "root": str(root)})
    assert_clear(e, str(root / "train.csv"), "not found", "Frontal/Lateral")
    kept = make_chexpert(root)
    bad = root.parent / kept[2]
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "chexpert", "root": str(root)})
    assert_clear(e, str(bad), "unreadable")
    bad.unlink()
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "chexpert", "root": str(root)})
    assert_clear(e, kept[2], "not found")
    table = (root / "train.csv").read_text().replace(",Support Devices", ",Devices")
    (root / "train.csv").write_text(table)
    with pytest.raises(DatasetFilesError) as e:
        load_dataset({"loader": "chexpert", "root": str(root)})
    assert_clear(e, "lacks the column(s) Support Devices")


# ----------------------------------------------------------------------------- the user's own folder
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
    assert sorted(data.meta["path"][split.val_ids].tolist()) == ["val/anomalous/w0.png", "val/anomalous/w1.png",
                                                                 "val/normal/v0.png", "val/normal/v1.png"]
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
    assert_clear(e, "split.train = 4000", "fraction")
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


# ----------------------------------------------------------------------------- through a validated config
def test_validated_config_prepares_and_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, textures: dict[str, np.ndarray], brain: tuple[np.ndarray, np.ndarray]
) -> None:
    """The path the workflow takes (schema defaults filled in, e.g. split.train = 4000 everywhere),
    with the new keys this module proposes added to the schema (a no-op once the schema has them)."""
    from protolib import config as protolib_config

    monkeypatch.setattr(protolib_config, "schema", schema_with_proposed_keys)
    make_mvtec(tmp_path / "mvtec", textures)
    make_brats(tmp_path / "brats", brain, n_patients=6)
    raw = {
        "seed": 0,
        "datasets": {
            "mvtec": {"root": str(tmp_path / "mvtec"), "classes": ["carpet"], "image_size": 32, "candidates": 5},
            "brats": {"root": str(tmp_path / "brats"), "image_size": 64, "split": {"val_size": 6, "test_size": 6},
                      "candidates": 5},
        },
        "models": {"knn": {"detector": "knn", "backbone": "pixels"}},
        "runs": [{"dataset": "mvtec", "model": "knn"}, {"dataset": "brats", "model": "knn"}],
        "selection": {"M": [1, 5], "methods": ["greedy"]},
    }
    config = protolib_config.validate(copy.deepcopy(raw))
    assert config["datasets"]["brats"]["split"]["train"] == 4000  # the one-vs-rest default, ignored by brats
    for key, cls in (("mvtec", 3), ("brats", 0)):
        prepare_dataset(config, key, tmp_path / f"{key}.npz")
        split = make_split(config, key, cls, tmp_path / f"{key}.npz", tmp_path / f"{key}.json")
        assert_disjoint(split)
        assert len(split.candidates) == 5
    assert split.protocol["val_size"] == 6 and len(split.val_ids) == 6

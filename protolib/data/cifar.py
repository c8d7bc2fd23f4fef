"""CIFAR-10 and CIFAR-100 (20 superclasses) from the official python pickles.

The paper runs both one-vs-rest (Reiss et al.'s protocol): 6000 images per class, 4000 for
training, so the loader returns the official train and test sets concatenated, in file order
(data_batch_1..5 then test_batch; CIFAR-100: train then test); an image's id is its row.

The pickles are read here rather than through ``torchvision.datasets.CIFAR10/100``: torchvision
md5-checks every batch file before reading, so it refuses any reduced copy (and a test can only
build reduced copies); its reading is otherwise exactly this (same keys, same order, same
(N, 3, 32, 32) -> HWC layout; the tests compare both). torchvision still does the download
(``download: true``), into its own layout ``root/cifar-10-batches-py`` / ``root/cifar-100-python``.

CIFAR-100 uses the 20 coarse superclasses: fine labels are mapped with :data:`FINE_TO_COARSE`
(the official table, written out below) and checked against the files' own ``coarse_labels``.
Pickles can run code when loaded; only point ``root`` at copies you trust (torchvision does the
same unpickling).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from protolib.data.base import DatasetFilesError, ImageDataset, register_dataset

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

#: the 100 fine classes in the official label order (``meta['fine_label_names']``)
CIFAR100_FINE_CLASSES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
]  # fmt: skip

#: the 20 superclasses in the official label order (``meta['coarse_label_names']``)
CIFAR100_COARSE_CLASSES = [
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
]  # fmt: skip

#: fine label -> coarse label, the official CIFAR-100 table (row i: fine labels 10i .. 10i+9)
FINE_TO_COARSE = np.array([
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3,
    3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15,
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10,
    16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19,
    2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19,
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
], dtype=np.int64)  # fmt: skip


class _Variant:
    """What differs between CIFAR-10 and CIFAR-100: folder, file names, label keys, meta."""

    def __init__(
        self,
        name: str,
        folder: str,
        files: list[str],
        label_key: str,
        meta_file: str,
        meta_key: str,
        meta_names: list[str],
        tv_class: str,
    ) -> None:
        self.name, self.folder, self.files, self.label_key = name, folder, files, label_key
        self.meta_file, self.meta_key, self.meta_names, self.tv_class = meta_file, meta_key, meta_names, tv_class

    def layout(self, root: Path) -> str:
        return (
            f"expected the official python version, torchvision's layout {root}/{self.folder}/ holding "
            f"{', '.join(self.files)} and {self.meta_file} (the extracted official archive, or those "
            "files directly in root); point datasets.<name>.root at the folder above it, or set "
            "download: true on a machine with the network"
        )


CIFAR10 = _Variant(
    "cifar10",
    "cifar-10-batches-py",
    [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
    "labels",
    "batches.meta",
    "label_names",
    CIFAR10_CLASSES,
    "CIFAR10",
)
CIFAR100 = _Variant(
    "cifar100",
    "cifar-100-python",
    ["train", "test"],
    "fine_labels",
    "meta",
    "fine_label_names",
    CIFAR100_FINE_CLASSES,
    "CIFAR100",
)


def _unpickle(path: Path, variant: _Variant) -> dict[str, Any]:
    """One official pickle as a dict with str keys (the files were written by Python 2)."""
    try:
        with open(path, "rb") as fh:
            entry = pickle.load(fh, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as err:
        raise DatasetFilesError(
            f"{variant.name}: {path} is not a readable CIFAR pickle ({type(err).__name__}: {err}); truncated or "
            f"corrupt? {variant.layout(path.parent.parent)}"
        ) from None
    if not isinstance(entry, dict):
        raise DatasetFilesError(f"{variant.name}: {path} holds a {type(entry).__name__}, not the official dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _find_folder(root: Path, variant: _Variant) -> Path | None:
    for folder in (root / variant.folder, root):
        if all((folder / f).is_file() for f in variant.files):
            return folder
    return None


def _download(root: Path, variant: _Variant) -> None:
    """torchvision's own (checksummed) download and extraction; needs the network."""
    # here: torchvision (~1 s) only when CIFAR is read from its download
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            getattr(tvd, variant.tv_class)(str(root), train=train, download=True)
    except Exception as err:  # RuntimeError (corrupt), URLError/OSError (no network) ...
        raise DatasetFilesError(
            f"{variant.name}: download into {root} failed ({type(err).__name__}: {err}); {variant.layout(root)}"
        ) from None


def find_folder(root: str | Path, variant: _Variant, download: bool = False) -> Path:
    """The folder holding the batch files; one error naming what is missing otherwise."""
    root = Path(root).expanduser()
    folder = _find_folder(root, variant) if root.is_dir() else None
    if folder is None and download:
        _download(root, variant)
        folder = _find_folder(root, variant)
    if folder is not None:
        return folder
    if not root.is_dir():
        raise DatasetFilesError(f"{variant.name}: root folder {root} does not exist; {variant.layout(root)}")
    where = root / variant.folder if (root / variant.folder).is_dir() else root
    missing = [f for f in variant.files if not (where / f).is_file()]
    raise DatasetFilesError(f"{variant.name}: {where} lacks {', '.join(missing)}; {variant.layout(root)}")


def read_batches(folder: Path, variant: _Variant) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Images (N, 32, 32, 3) uint8, labels (fine for CIFAR-100), coarse labels when the files have them."""
    images, labels, coarse = [], [], []
    for name in variant.files:
        path = folder / name
        entry = _unpickle(path, variant)
        if "data" not in entry or variant.label_key not in entry:
            raise DatasetFilesError(
                f"{variant.name}: {path} lacks the keys 'data' and {variant.label_key!r} "
                f"(has {', '.join(sorted(map(str, entry)))}); not a {variant.name} batch?"
            )
        data = np.asarray(entry["data"])
        y = np.asarray(entry[variant.label_key], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DatasetFilesError(
                f"{variant.name}: {path}: 'data' has shape {data.shape} of {data.dtype}, expected (N, 3072) uint8 "
                "(32x32 RGB, channel-major rows)"
            )
        if len(y) != len(data):
            raise DatasetFilesError(f"{variant.name}: {path}: {len(data)} images but {len(y)} labels")
        n_classes = len(variant.meta_names)
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise DatasetFilesError(f"{variant.name}: {path}: labels outside 0..{n_classes - 1}")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(y)
        if "coarse_labels" in entry:
            coarse.append(np.asarray(entry["coarse_labels"], dtype=np.int64))
    coarse_all = np.concatenate(coarse) if len(coarse) == len(variant.files) else None
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), coarse_all


def check_meta(folder: Path, variant: _Variant) -> None:
    """The meta file's class names, when present, must be the official ones (wrong dataset otherwise)."""
    path = folder / variant.meta_file
    if not path.is_file():
        return
    meta = _unpickle(path, variant)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(variant.meta_key, [])]
    if names != variant.meta_names:
        raise DatasetFilesError(
            f"{variant.name}: {path}: {variant.meta_key} {names[:5]}... are not the official class names "
            f"{variant.meta_names[:5]}...; is root pointing at another dataset?"
        )
    if variant is CIFAR100 and "coarse_label_names" in meta:
        coarse = [n.decode() if isinstance(n, bytes) else str(n) for n in meta["coarse_label_names"]]
        if coarse != CIFAR100_COARSE_CLASSES:
            raise DatasetFilesError(
                f"{variant.name}: {path}: coarse_label_names differ from the official 20 superclasses"
            )


def _check_classes(labels: np.ndarray, names: list[str], variant: _Variant, folder: Path) -> None:
    """Every class must have images: one-vs-rest needs each as normal class and as anomalies."""
    counts = np.bincount(labels, minlength=len(names))
    empty = [f"{names[i]} ({i})" for i in np.flatnonzero(counts == 0)]
    if empty:
        raise DatasetFilesError(
            f"{variant.name}: no images of class {', '.join(empty)} in {folder}; an incomplete copy?"
        )


def load(cfg: dict[str, Any], variant: _Variant) -> ImageDataset:
    if not cfg.get("root"):
        raise DatasetFilesError(f"{variant.name}: no root given; {variant.layout(Path('<root>'))}")
    folder = find_folder(cfg["root"], variant, download=bool(cfg.get("download", False)))
    check_meta(folder, variant)
    images, labels, coarse_in_file = read_batches(folder, variant)
    class_names = CIFAR10_CLASSES
    meta: dict[str, np.ndarray] = {}
    if variant is CIFAR100:
        coarse = FINE_TO_COARSE[labels]
        if coarse_in_file is not None and not np.array_equal(coarse, coarse_in_file):
            bad = int(np.flatnonzero(coarse != coarse_in_file)[0])
            raise DatasetFilesError(
                f"cifar100: the files' coarse_labels disagree with the official fine->coarse table "
                f"(row {bad}: fine {labels[bad]} -> {coarse[bad]}, file says {coarse_in_file[bad]}) in {folder}"
            )
        meta["fine_label"] = labels
        labels, class_names = coarse, CIFAR100_COARSE_CLASSES
    _check_classes(labels, class_names, variant, folder)
    return ImageDataset(name=variant.name, images=images, labels=labels, class_names=list(class_names), meta=meta)


@register_dataset("cifar10", CIFAR10_CLASSES, reads=())
def load_cifar10(cfg: dict[str, Any]) -> ImageDataset:
    return load(cfg, CIFAR10)


@register_dataset("cifar100", CIFAR100_COARSE_CLASSES, reads=())
def load_cifar100(cfg: dict[str, Any]) -> ImageDataset:
    return load(cfg, CIFAR100)

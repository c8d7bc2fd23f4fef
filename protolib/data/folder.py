"""The user's own images (``loader: folder``), and the split helpers other protocols share.

Two layouts under ``root`` (PNG/JPEG/TIFF/BMP, grey or colour, subfolders allowed):

1. fixed parts::

       root/train/                 normal training images (required)
       root/val/normal/            optional
       root/val/anomalous/         optional
       root/test/normal/           optional
       root/test/anomalous/        optional

   Given parts are used as they are. If only one of val/test exists, the other is carved from
   it with the split seed (``split.val_fraction`` of each label goes to val, the rest to test).

2. one pool::

       root/normal/                all normal images (required)
       root/anomalous/             known anomalies (optional)

   Normal images are split like one-vs-rest (``split.train``: a count or a fraction of them;
   the rest halves into val and test by ``split.val_fraction``); anomalies go to val and test by
   ``split.val_fraction``.

Preparing works without any anomaly (e.g. to rank training images label-free), but a split
whose val or test set lacks normal or anomalous images fails, naming what to add: every later
stage measures AUROC on them. Images are resized to ``image_size`` (default: keep the native
size, which must then be the same for all) and stored grey when all files are grey, else RGB
(``color: grey | rgb`` forces one). The dataset has one class, ``normal``; ``meta['anomalous']``
marks anomalies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from protolib.data.base import ImageDataset, register_dataset
from protolib.data.images import DatasetFilesError, image_size, read_images, require_root, scan_folder
from protolib.data.splits import Split, class_seed

CLASS_NAMES = ["normal"]
LAYOUT = (
    "root/train/ (normal training images) with optional root/val/{normal,anomalous}/ and "
    "root/test/{normal,anomalous}/, or root/normal/ with an optional root/anomalous/ "
    "(PNG/JPEG/TIFF/BMP files)"
)
#: layout-1 parts: (folder under root, part name, anomalous)
FIXED_PARTS = [
    ("train", "train", False),
    ("val/normal", "val", False),
    ("val/anomalous", "val", True),
    ("test/normal", "test", False),
    ("test/anomalous", "test", True),
]
POOL_PARTS = [("normal", "pool", False), ("anomalous", "pool", True)]
DEFAULT_VAL_FRACTION = 0.5


# ----------------------------------------------------------------------------- shared split helpers
def split_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    return cfg.get("split") or {}


def val_fraction(cfg: dict[str, Any], default: float = DEFAULT_VAL_FRACTION) -> float:
    frac = split_cfg(cfg).get("val_fraction", default)
    if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0 < frac < 1:
        raise ValueError(f"split.val_fraction must be a number in (0, 1), got {frac!r}")
    return float(frac)


def carve(ids: np.ndarray, strata: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split ``ids`` into (val, test), each stratum by ``fraction`` (at least one each when it has two).

    Stratifying (by label, or by MVTec defect type) keeps every kind of anomaly in both sets,
    so the val AUROC the selection optimises measures the same thing as the test AUROC.
    """
    val, test = [], []
    for value in sorted(set(strata.tolist())):
        members = rng.permutation(ids[strata == value])
        n = len(members)
        k = int(round(fraction * n))
        if n >= 2:
            k = min(max(k, 1), n - 1)
        val.append(members[:k])
        test.append(members[k:])
    empty = np.empty(0, dtype=np.int64)
    return (np.concatenate(val) if val else empty).astype(np.int64), (np.concatenate(test) if test else empty).astype(np.int64)


def build_split(
    *, dataset: str, normal_class: int, class_name: str, seed: int, train: np.ndarray,
    val_ids: np.ndarray, test_ids: np.ndarray, anomalous: np.ndarray, candidates: int,
    rng: np.random.Generator, protocol: dict[str, Any], fix: str,
) -> Split:
    """Sorted parts, labels from ``anomalous`` (indexed by id), K candidates; fails when a part lacks a label.

    ``fix`` tells the user what to change when val or test lacks normal or anomalous images.
    """
    train = np.sort(np.asarray(train, dtype=np.int64))
    if len(train) == 0:
        raise ValueError(f"{dataset}/{class_name}: no training images; {fix}")
    parts = {}
    for part, ids in (("val", val_ids), ("test", test_ids)):
        ids = np.sort(np.asarray(ids, dtype=np.int64))
        y = anomalous[ids].astype(np.int64)
        n_anom = int(y.sum())
        if n_anom == 0 or n_anom == len(y):
            lacking = "anomalous" if n_anom == 0 else "normal"
            raise ValueError(
                f"{dataset}/{class_name}: the {part} set has {len(y) - n_anom} normal and {n_anom} anomalous "
                f"images; it needs both (AUROC is measured on it). Add {lacking} images: {fix}"
            )
        parts[part] = (ids, y)
    k = min(int(candidates), len(train))
    cand = np.sort(rng.choice(train, size=k, replace=False)).astype(np.int64)
    split = Split(
        dataset=dataset, normal_class=int(normal_class), class_name=class_name, seed=int(seed), train=train,
        candidates=cand, val_ids=parts["val"][0], val_labels=parts["val"][1],
        test_ids=parts["test"][0], test_labels=parts["test"][1],
        protocol={**protocol, "candidates": k, "n_train": len(train),
                  "n_val": [int((parts["val"][1] == 0).sum()), int(parts["val"][1].sum())],
                  "n_test": [int((parts["test"][1] == 0).sum()), int(parts["test"][1].sum())]},
    )
    split.check(f"{dataset}/{class_name}")
    return split


def n_train_of(train: Any, n: int, what: str) -> int:
    """``split.train`` as a count or a fraction of ``n`` images, with one clear error when too large."""
    if isinstance(train, bool) or not isinstance(train, (int, float)):
        raise ValueError(f"split.train must be a count or a fraction in (0, 1), got {train!r}")
    n_train = int(round(train * n)) if isinstance(train, float) and train < 1 else int(train)
    if n_train < 1 or n - n_train < 2:
        raise ValueError(
            f"{what}: {n} normal images; split.train = {train} leaves {n - n_train} for val and test "
            "(need at least 2); set split.train to a smaller count or a fraction such as 0.6"
        )
    return n_train


# ----------------------------------------------------------------------------- loader
def _read_all(files: list[Path], size: int | None, color: str) -> np.ndarray:
    decoded = read_images(files, color, size=size).images
    shape = decoded[0].shape[:2]
    for path, im in zip(files, decoded, strict=True):
        if im.shape[:2] != shape:
            raise DatasetFilesError(
                f"folder: {path} is {im.shape[1]}x{im.shape[0]} pixels but {files[0]} is {shape[1]}x{shape[0]}; "
                "set datasets.<name>.image_size to resize all images to one square size"
            )
    return np.stack(decoded)


def load_folder(cfg: dict[str, Any]) -> ImageDataset:
    root = require_root(cfg, "folder", LAYOUT)
    if (root / "train").is_dir():
        parts = FIXED_PARTS
    elif (root / "normal").is_dir():
        parts = POOL_PARTS
    else:
        raise DatasetFilesError(f"folder: {root} has neither a train/ nor a normal/ folder; expected {LAYOUT}")
    files: list[Path] = []
    part_of: list[str] = []
    anomalous: list[bool] = []
    for sub, part, is_anomalous in parts:
        folder = root / sub
        if not folder.is_dir():
            continue
        listing = scan_folder(folder)
        if listing.broken:
            path, reason = listing.broken[0]
            raise DatasetFilesError(f"folder: {path}: {reason}; remove the link or point it at an image file "
                                    f"({len(listing.broken)} such link(s) under {folder})")
        found = listing.images
        if sub in ("train", "normal") and not found:
            raise DatasetFilesError(f"folder: {folder} holds no image files (.png, .jpg, .tif, .bmp); expected {LAYOUT}")
        files += found
        part_of += [part] * len(found)
        anomalous += [is_anomalous] * len(found)
    images = _read_all(files, image_size(cfg, None), cfg.get("color", "auto"))
    return ImageDataset(
        name="folder",
        images=images,
        labels=np.zeros(len(files), dtype=np.int64),
        class_names=list(CLASS_NAMES),
        meta={
            "anomalous": np.asarray(anomalous, dtype=bool),
            "part": np.asarray(part_of, dtype=str),
            "path": np.asarray([str(p.relative_to(root)) for p in files], dtype=str),
        },
    )


def folder_split(data: ImageDataset, normal_class: int, cfg: dict[str, Any], seed: int, dataset_key: str) -> Split:
    """Given parts as they are; a missing val or test carved from the other; a pool carved fully."""
    rng = class_seed(seed, normal_class)
    part = data.meta["part"].astype(str)
    anomalous = data.meta["anomalous"].astype(bool)
    frac = val_fraction(cfg)
    ids = np.arange(len(data), dtype=np.int64)
    candidates = cfg.get("candidates", 300)
    if (part == "pool").any():
        normal = rng.permutation(ids[(part == "pool") & ~anomalous])
        n_train = n_train_of(split_cfg(cfg).get("train", 0.6), len(normal), f"{dataset_key} (root/normal/)")
        held = normal[n_train:]
        held_ids = np.concatenate([held, ids[(part == "pool") & anomalous]])
        val_ids, test_ids = carve(held_ids, anomalous[held_ids], frac, rng)
        train, kind = normal[:n_train], "pool"
        fix = "put known anomalies into root/anomalous/"
    else:
        train = ids[part == "train"]
        val_ids, test_ids = ids[part == "val"], ids[part == "test"]
        kind = "fixed"
        if len(val_ids) == 0 and len(test_ids) > 0:
            val_ids, test_ids = carve(test_ids, anomalous[test_ids], frac, rng)
            kind = "fixed, val carved from test"
        elif len(test_ids) == 0 and len(val_ids) > 0:
            test_ids, val_ids = carve(val_ids, anomalous[val_ids], 1 - frac, rng)
            kind = "fixed, test carved from val"
        fix = "fill root/val/{normal,anomalous}/ and root/test/{normal,anomalous}/ (or one of them: the other is carved from it)"
    return build_split(
        dataset=dataset_key, normal_class=normal_class, class_name=data.class_names[normal_class], seed=seed,
        train=train, val_ids=val_ids, test_ids=test_ids, anomalous=anomalous, candidates=candidates, rng=rng,
        protocol={"kind": f"folder ({kind})", "val_fraction": frac}, fix=fix,
    )


register_dataset("folder", CLASS_NAMES, split=folder_split)(load_folder)

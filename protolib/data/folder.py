"""The user's own images (``loader: folder``) and their split protocol.

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

import logging
from pathlib import Path
from typing import Any

import numpy as np

from protolib.data.base import DatasetFilesError, ImageDataset, register_dataset
from protolib.data.images import image_size, read_images, require_root, scan_folder, some_names
from protolib.data.splits import Split, build_split, carve, class_seed, n_train_of, split_cfg, val_fraction

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


# ----------------------------------------------------------------------------- loader
def _read_all(files: list[Path], size: int | None, color: str) -> np.ndarray:
    read = read_images(files, color, size=size)
    if read.first_frame_only:
        logging.getLogger(__name__).warning(
            "folder: %d file(s) hold several frames (multi-page TIFF, animated PNG); only the first is read: %s",
            len(read.first_frame_only),
            some_names(read.first_frame_only),
        )
    decoded = read.images
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
            raise DatasetFilesError(
                f"folder: {path}: {reason}; remove it or replace it with an image file "
                f"({len(listing.broken)} such file(s) or link(s) under {folder})"
            )
        found = listing.images
        if listing.hidden:  # e.g. .DS_Store, macOS's ._* copies: skipped, as everywhere
            logging.getLogger(__name__).warning(
                "folder: %d hidden file(s) or folder(s) under %s (name starting with '.') are not read: %s",
                len(listing.hidden),
                folder,
                some_names(listing.hidden),
            )
        if listing.others:  # e.g. .webp or .pgm exports: the set would be smaller than the folder
            logging.getLogger(__name__).warning(
                "folder: %d file(s) under %s are not PNG, JPEG, TIFF or BMP and are not read: %s",
                len(listing.others),
                folder,
                some_names(listing.others),
            )
        if sub in ("train", "normal") and not found:
            raise DatasetFilesError(
                f"folder: {folder} holds no image files (.png, .jpg, .tif, .bmp); expected {LAYOUT}"
            )
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
    candidates = cfg["candidates"]
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
        fix = (
            "fill root/val/{normal,anomalous}/ and root/test/{normal,anomalous}/ "
            "(or one of them: the other is carved from it)"
        )
    return build_split(
        dataset=dataset_key,
        normal_class=normal_class,
        class_name=data.class_names[normal_class],
        seed=seed,
        train=train,
        val_ids=val_ids,
        test_ids=test_ids,
        anomalous=anomalous,
        candidates=candidates,
        rng=rng,
        protocol={"kind": f"folder ({kind})", "val_fraction": frac},
        fix=fix,
    )


register_dataset("folder", CLASS_NAMES, split=folder_split, reads=("image_size", "color", "split.val_fraction"))(
    load_folder
)

"""MVTec-AD (Bergmann et al. 2019) from its official folders, all 15 categories as classes.

Layout (the extracted official archive)::

    root/<category>/train/good/*.png
    root/<category>/test/<good | defect type>/*.png
    root/<category>/ground_truth/<defect type>/<name>_mask.png

Images are resized to ``image_size`` (default 256: PatchCore then crops 224) and stored RGB
uint8 (grid, screw and zipper are grey files, repeated to 3 channels). All categories live in
one prepared array; ``labels`` is the category and per-image ``meta`` arrays drive the split:
``part`` (official ``train``/``test``), ``anomalous``, ``defect`` (folder name, ``good`` for
normal), ``defect_fraction`` (share of mask pixels; NaN when no mask file) and ``path``.

Split (the paper uses the official split, and MVTec has no validation set, so val is carved
from test): train = the category's train/good; val = ``split.val_fraction`` (default 0.5) of its
test images, drawn with the split seed per defect type so every defect type (and ``good``) is
in both val and test; test = the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from protolib.data.base import DatasetFilesError, ImageDataset, class_list, register_dataset
from protolib.data.images import image_size, list_images, read_image, require_root, resize
from protolib.data.splits import Split, build_split, carve, class_seed, val_fraction

CATEGORIES = [
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw",
    "tile", "toothbrush", "transistor", "wood", "zipper",
]  # fmt: skip
DEFAULT_IMAGE_SIZE = 256
LAYOUT = (
    "root/<category>/train/good/*.png, root/<category>/test/<good or defect type>/*.png and "
    "root/<category>/ground_truth/<defect type>/<name>_mask.png for the categories " + ", ".join(CATEGORIES)
)


def _mask_fraction(mask_path: Path, image_shape: tuple[int, ...], size: int) -> float:
    """Share of defect pixels (NaN without a mask file); a mask must match its image's size."""
    if not mask_path.is_file():
        return float("nan")
    mask = read_image(mask_path, "grey", what="mask")
    if mask.shape[:2] != image_shape[:2]:
        raise DatasetFilesError(
            f"mvtec: mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} pixels but its image is "
            f"{image_shape[1]}x{image_shape[0]}; expected {LAYOUT}"
        )
    return float((resize(mask, size, nearest=True) > 0).mean())


def _category_files(root: Path, category: str) -> list[tuple[Path, str, str]]:
    """(file, part, defect) of one category in a stable order: train/good, then test by defect."""
    folder = root / category
    if not folder.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DatasetFilesError(
            f"mvtec: category folder {folder} does not exist (root holds: {', '.join(present) or 'nothing'}); "
            f"expected {LAYOUT}"
        )
    train = list_images(folder / "train" / "good") if (folder / "train" / "good").is_dir() else []
    if not train:
        raise DatasetFilesError(f"mvtec: {folder / 'train' / 'good'} holds no images; expected {LAYOUT}")
    test_root = folder / "test"
    # hidden folders (.ipynb_checkpoints, ...) are skipped, as everywhere (images.py): not a defect type
    defects = (
        sorted(p.name for p in test_root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if test_root.is_dir()
        else []
    )
    test = [(p, "test", d) for d in defects for p in list_images(test_root / d)]
    if not any(d == "good" for _, _, d in test) or not any(d != "good" for _, _, d in test):
        raise DatasetFilesError(
            f"mvtec: {test_root} needs images in test/good/ and in at least one test/<defect type>/ folder "
            f"(found: {', '.join(defects) or 'no folders'}); expected {LAYOUT}"
        )
    return [(p, "train", "good") for p in train] + test


def load_mvtec(cfg: dict[str, Any]) -> ImageDataset:
    """The requested categories (``classes``; all 15 by default), resized, RGB uint8."""
    root = require_root(cfg, "mvtec", LAYOUT)
    size = image_size(cfg, DEFAULT_IMAGE_SIZE)
    wanted = class_list({**cfg, "loader": "mvtec"})
    # every category's layout is checked before the slow decoding starts
    entries = [(c, path, p, d) for c in wanted for path, p, d in _category_files(root, CATEGORIES[c])]
    images = np.empty((len(entries), size, size, 3), dtype=np.uint8)  # filled in place: no second copy
    fraction = np.empty(len(entries), dtype=np.float32)
    for i, (c, path, _, d) in enumerate(entries):
        image = read_image(path, "rgb", what="MVTec image")
        mask_path = root / CATEGORIES[c] / "ground_truth" / d / f"{path.stem}_mask.png"
        fraction[i] = 0.0 if d == "good" else _mask_fraction(mask_path, image.shape, size)
        images[i] = resize(image, size)
    category = [e[0] for e in entries]
    part = [e[2] for e in entries]
    defect = [e[3] for e in entries]
    paths = [str(e[1].relative_to(root)) for e in entries]
    labels = np.asarray(category, dtype=np.int64)
    return ImageDataset(
        name="mvtec",
        images=images,
        labels=labels,
        class_names=list(CATEGORIES),
        meta={
            "category": labels.copy(),
            "part": np.asarray(part, dtype=str),
            "anomalous": np.asarray([d != "good" for d in defect], dtype=bool),
            "defect": np.asarray(defect, dtype=str),
            "defect_fraction": fraction,
            "path": np.asarray(paths, dtype=str),
        },
    )


def mvtec_split(data: ImageDataset, normal_class: int, cfg: dict[str, Any], seed: int, dataset_key: str) -> Split:
    """Official train/good; the official test carved into val and test per defect type."""
    name = data.class_names[normal_class]
    in_class = data.meta["category"] == normal_class
    if not in_class.any():
        raise ValueError(
            f"{dataset_key}: the prepared data holds no images of category {name!r}; add it to "
            f"datasets.{dataset_key}.classes and prepare again"
        )
    part = data.meta["part"].astype(str)
    anomalous = data.meta["anomalous"].astype(bool)
    defect = data.meta["defect"].astype(str)
    ids = np.arange(len(data), dtype=np.int64)
    train = ids[in_class & (part == "train")]
    if anomalous[train].any():
        raise ValueError(f"{dataset_key}/{name}: training images marked anomalous; the prepared file is inconsistent")
    test_pool = ids[in_class & (part == "test")]
    rng = class_seed(seed, normal_class)
    frac = val_fraction(cfg)
    val_ids, test_ids = carve(test_pool, defect[test_pool], frac, rng)
    return build_split(
        dataset=dataset_key,
        normal_class=normal_class,
        class_name=name,
        seed=seed,
        train=train,
        val_ids=val_ids,
        test_ids=test_ids,
        anomalous=anomalous,
        candidates=cfg["candidates"],
        rng=rng,
        protocol={
            "kind": "mvtec: official train; val carved from the official test per defect type",
            "val_fraction": frac,
            "defect_types": sorted(set(defect[test_pool].tolist())),
        },
        fix=f"the category's test/ folder needs good and defective images ({LAYOUT})",
    )


register_dataset("mvtec", CATEGORIES, split=mvtec_split, reads=("image_size", "split.val_fraction"))(load_mvtec)

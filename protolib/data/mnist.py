"""MNIST from its four official IDX files: 70 000 grey 28x28 digits, train then t10k.

Same protocol and conventions as :mod:`protolib.data.fashion_mnist` (one-vs-rest, 4000 training
images of the 7000 per class; an image's id is its row: train row i -> i, t10k row j -> 60000 + j)
and the same IDX reader (:mod:`protolib.data.idx`), so plain and ``.gz`` files both load and a
reduced copy in the official format works. ``root`` holds the four files, or torchvision's layout
``root/MNIST/raw/``; ``download: true`` lets torchvision fetch them (network needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from protolib.data.base import DatasetFilesError, ImageDataset, register_dataset
from protolib.data.idx import locate_or_download, read_labelled_idx

CLASS_NAMES = [str(d) for d in range(10)]
#: part -> (images file, labels file), as named upstream (each may also carry ``.gz``)
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_SHAPE = (28, 28)
NAMES = [n for pair in FILES.values() for n in pair]


def _layout(root: Path) -> str:
    return (
        f"expected the four official MNIST files {', '.join(NAMES)} (each plain or .gz) in {root} or in "
        f"torchvision's layout {root}/MNIST/raw/; point datasets.<name>.root at your copy, or set download: true "
        "on a machine with the network"
    )


def _find(folder: Path) -> dict[str, Path] | None:
    found = {}
    for name in NAMES:
        hit = next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)
        if hit is None:
            return None
        found[name] = hit
    return found


def find_files(root: Path) -> dict[str, Path]:
    """The four files under root or root/MNIST/raw; one error naming what is missing otherwise."""
    if not root.is_dir():
        raise DatasetFilesError(f"mnist: root folder {root} does not exist; {_layout(root)}")
    folders = [root, root / "MNIST" / "raw"]
    for folder in folders:
        found = _find(folder)
        if found is not None:
            return found
    where = folders[1] if folders[1].is_dir() else root
    missing = [n for n in NAMES if not (where / n).is_file() and not (where / f"{n}.gz").is_file()]
    raise DatasetFilesError(f"mnist: {where} lacks {', '.join(missing)}; {_layout(root)}")


def _download(root: Path) -> None:
    # here: torchvision (~1 s) only when MNIST is read from its download
    from torchvision.datasets import MNIST

    root.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            MNIST(str(root), train=train, download=True)
    except Exception as err:  # RuntimeError / URLError / OSError, depending on what failed
        raise DatasetFilesError(
            f"mnist: download into {root} failed ({type(err).__name__}: {err}); {_layout(root)}"
        ) from None


def load_arrays(root: str | Path, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64: train rows first, then t10k."""
    root = Path(root).expanduser()
    files = locate_or_download(root, download, find_files, _download)
    return read_labelled_idx(
        [(files[image_name], files[label_name]) for image_name, label_name in FILES.values()],
        dataset="mnist",
        image_shape=IMAGE_SHAPE,
        class_names=CLASS_NAMES,
        error=DatasetFilesError,
        hint=_layout(root),
    )


@register_dataset("mnist", CLASS_NAMES, reads=())
def load_mnist(cfg: dict[str, Any]) -> ImageDataset:
    if not cfg.get("root"):
        raise DatasetFilesError(f"mnist: no root given; {_layout(Path('<root>'))}")
    images, labels = load_arrays(cfg["root"], download=bool(cfg.get("download", False)))
    return ImageDataset(name="mnist", images=images, labels=labels, class_names=list(CLASS_NAMES))

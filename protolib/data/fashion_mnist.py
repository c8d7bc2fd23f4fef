"""Fashion-MNIST (Xiao et al. 2017) from its four official IDX files: 70 000 grey 28x28 images.

The paper runs it one-vs-rest with 4000 training images per class, so the loader returns the
official train (60 000) and t10k (10 000) sets concatenated, in file order; a sample's id is its
row (train row i -> id i, t10k row j -> id 60000 + j), which keeps ids stable across machines.

``root`` is a folder holding the four files, each plain or ``.gz`` (Debian's
``dataset-fashion-mnist`` package installs them in /usr/share/datasets/fashion-mnist, the default
when root is null), or torchvision's layout ``root/FashionMNIST/raw/``. With ``download: true``
and files missing, torchvision downloads them into that layout. Nothing is cached: decoding the
IDX bytes with numpy takes well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from protolib.data.base import DatasetFilesError, ImageDataset, register_dataset
from protolib.data.idx import locate_or_download, read_labelled_idx

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
#: split -> (images file, labels file), as named upstream (each may also carry ``.gz``)
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
IMAGE_SHAPE = (28, 28)


def _expected_names() -> list[str]:
    return [name for pair in FILES.values() for name in pair]


def _describe_expected(folders: list[Path]) -> str:
    where = " or ".join(str(f) for f in folders)
    return (
        f"expected the four official Fashion-MNIST files {', '.join(_expected_names())} "
        f"(each plain or .gz) in {where}; install them with `apt-get install dataset-fashion-mnist` "
        f"(lands in {DEFAULT_ROOT}), point datasets.<name>.root at your copy, or set download: true"
    )


def _candidate_folders(root: Path) -> list[Path]:
    """The folder itself, then torchvision's layout under it."""
    return [root, root / "FashionMNIST" / "raw"]


def _find_in(folder: Path) -> dict[str, Path] | None:
    """Each expected name -> its file in ``folder`` (plain preferred: no decompression), or None."""
    found: dict[str, Path] = {}
    for name in _expected_names():
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            return None
    return found


def find_files(root: str | Path) -> dict[str, Path]:
    """The four files under ``root``; raise DatasetFilesError naming what was expected."""
    root = Path(root).expanduser()
    folders = _candidate_folders(root)
    if not root.is_dir():
        raise DatasetFilesError(f"fashion_mnist: root folder {root} does not exist; " + _describe_expected(folders))
    for folder in folders:
        found = _find_in(folder)
        if found is not None:
            return found
    # report the folder that came closest (the user's intended one), and what it lacks
    lacking = {
        f: [n for n in _expected_names() if not (f / n).is_file() and not (f / f"{n}.gz").is_file()]
        for f in folders
        if f.is_dir()
    }
    closest = min(lacking, key=lambda f: len(lacking[f]))
    raise DatasetFilesError(
        f"fashion_mnist: {closest} lacks {', '.join(lacking[closest])}; " + _describe_expected(folders)
    )


def _download(root: Path) -> None:
    """torchvision's own download (checksummed) into ``root/FashionMNIST/raw``; needs the network."""
    # here: torchvision (~1 s) only when Fashion-MNIST is read from its download
    from torchvision.datasets import FashionMNIST

    root.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        try:
            FashionMNIST(str(root), train=train, download=True)
        except Exception as err:  # torchvision raises RuntimeError/URLError/OSError variously
            raise DatasetFilesError(
                f"fashion_mnist: download into {root} failed ({type(err).__name__}: {err}); "
                + _describe_expected(_candidate_folders(root))
            ) from err


def resolve_root(cfg: dict[str, Any]) -> Path:
    """``root`` from config, or the Debian package's folder when root is null and it exists."""
    root = cfg.get("root")
    if root:
        return Path(root).expanduser()
    if DEFAULT_ROOT.is_dir():
        return DEFAULT_ROOT
    if cfg.get("download"):
        raise DatasetFilesError(
            "fashion_mnist: download: true needs datasets.<name>.root, the folder to download into "
            f"(no root given and {DEFAULT_ROOT} does not exist)"
        )
    raise DatasetFilesError(
        f"fashion_mnist: no root given and {DEFAULT_ROOT} does not exist; " + _describe_expected([DEFAULT_ROOT])
    )


def load_arrays(root: str | Path, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images (70000, 28, 28) uint8 and labels (70000,) int64: train rows first, then t10k."""
    root = Path(root).expanduser()
    files = locate_or_download(root, download, find_files, _download)
    return read_labelled_idx(
        [(files[image_name], files[label_name]) for image_name, label_name in FILES.values()],
        dataset="fashion_mnist",
        image_shape=IMAGE_SHAPE,
        class_names=CLASS_NAMES,
        error=DatasetFilesError,
        hint=_describe_expected([files[FILES["train"][0]].parent]),
    )


@register_dataset("fashion_mnist", CLASS_NAMES, reads=())
def load_fashion_mnist(cfg: dict[str, Any]) -> ImageDataset:
    images, labels = load_arrays(resolve_root(cfg), download=bool(cfg.get("download", False)))
    return ImageDataset(name="fashion_mnist", images=images, labels=labels, class_names=list(CLASS_NAMES))

"""Shared helpers for the loaders that read image files: one reader, one resizer, one error type.

Every loader that decodes files (MVTec, the chest X-ray sets, the user's own folder) goes through
:func:`read_image`, so an unreadable or truncated file always fails the same way: one
:class:`DatasetFilesError` naming the file and what the loader expected, never a decoder's deep
stack trace. Resizing uses Pillow (antialiased when shrinking), the same filter family as
torchvision's ``Resize``, and images are stored as uint8 like every prepared dataset.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

# One error type for every loader (Fashion-MNIST defined it first): catchable as
# FileNotFoundError or ValueError, its message names the file/folder and the expected layout.
from protolib.data.fashion_mnist import DatasetFilesError

__all__ = [
    "DatasetFilesError",
    "IMAGE_SUFFIXES",
    "center_crop_square",
    "list_images",
    "optional_import",
    "read_image",
    "resize",
    "to_uint8",
]

#: file name endings the folder-based loaders pick up (case-insensitive)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def optional_import(module: str, pip_name: str, what: str) -> ModuleType:
    """Import a reader only the loader that needs it uses, with the install line when missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DatasetFilesError(
            f"{what} needs the Python package {pip_name!r}, which is not installed; `pip install {pip_name}`"
        ) from None


def list_images(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` in a stable (sorted) order; hidden files are skipped."""
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(
        p for p in pattern
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def to_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 as is; any other type (16-bit PNG/TIFF, DICOM, float) min-max scaled per image.

    Per-image scaling because 12/16-bit medical images use only part of their nominal range.
    """
    array = np.asarray(array)
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    values = array.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(array.shape, dtype=np.uint8)
    lo, hi = float(values[finite].min()), float(values[finite].max())
    if hi <= lo:
        return np.zeros(array.shape, dtype=np.uint8)
    scaled = np.where(finite, (values - lo) * (255.0 / (hi - lo)), 0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def read_image(path: Path, mode: str = "auto", what: str = "image") -> np.ndarray:
    """Decode one file into uint8 (H, W) grey or (H, W, 3) RGB; a broken file raises one clear error.

    ``mode``: ``grey``, ``rgb`` or ``auto`` (grey when the file is grey, else RGB). Pillow opens
    lazily, so the pixels are forced with ``load()`` inside the try: a truncated PNG fails here,
    naming the file, and not later in some unrelated place.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            file_mode = img.mode
            if file_mode in _GREY_MODES:
                grey = np.asarray(img.convert("L") if file_mode in {"1", "LA"} else img)
                if grey.ndim == 3:  # some 'I;16' variants decode with a trailing axis
                    grey = grey[..., 0]
                grey = to_uint8(grey)
                if mode == "rgb":
                    return np.repeat(grey[..., None], 3, axis=-1)
                return grey
            rgb = np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise DatasetFilesError(f"{path}: {what} file not found") from None
    except UnidentifiedImageError:
        raise DatasetFilesError(f"{path}: not a readable {what} (Pillow cannot identify the format)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DatasetFilesError(f"{path}: unreadable {what} ({err}); a truncated or corrupt file?") from None
    if mode == "grey":
        # ITU-R 601 luma, as Pillow's convert("L")
        luma = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def center_crop_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square: X-rays are resized without distorting the anatomy."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def resize(image: np.ndarray, size: int | tuple[int, int], nearest: bool = False) -> np.ndarray:
    """uint8 image -> (size, size) with Pillow's antialiased bilinear filter (nearest for masks)."""
    from PIL import Image

    target = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))  # (H, W)
    if image.shape[:2] == target:
        return image
    resample = Image.NEAREST if nearest else Image.BILINEAR
    out = Image.fromarray(np.ascontiguousarray(image)).resize((target[1], target[0]), resample=resample)
    return np.asarray(out, dtype=np.uint8)


def image_size(cfg: dict[str, Any], default: int | None) -> int | None:
    """``image_size`` from config, else the loader's own default (None: keep the native size)."""
    size = cfg.get("image_size")
    if size is None:
        return default
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise ValueError(f"image_size must be an integer >= 8, got {size!r}")
    return size


def require_root(cfg: dict[str, Any], what: str, layout: str) -> Path:
    """``root`` from config as an existing folder, else one error that shows the expected layout."""
    root = cfg.get("root")
    if not root:
        raise DatasetFilesError(f"{what}: no root given; set datasets.<name>.root to a folder laid out as {layout}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DatasetFilesError(f"{what}: root folder {path} does not exist; expected a folder laid out as {layout}")
    return path

"""Read a folder of image files (PNG, JPEG, TIFF) into one uint8 array for ``protolib rank``.

Only the folder's own files are read (no subfolders), sorted by name, so the order and every
result derived from it are deterministic. Each image is resized (squashed, aspect ratio not
kept) to ``image_size`` x ``image_size``. Greyscale and colour may be mixed: an image counts as
colour only if its channels differ, and if any image of the call is colour, every image becomes
RGB (grey replicated), else all stay single-channel (L). 16-bit and float greyscale are scaled
to 8 bit. A file that cannot be decoded is either skipped and reported by name, or fails the
call with an :class:`UnreadableImageError` naming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_GREY_MODES = {"1", "L", "LA", "La", "I", "F"}


class UnreadableImageError(ValueError):
    """A file with an image suffix that could not be decoded (``on_error='fail'``)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read image {str(path)!r}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class ImageFolder:
    """The readable images of one or more folders, in a common mode and size."""

    paths: list[Path]  # one per image, in array order
    images: np.ndarray  # uint8, (N, S, S) if mode == "L", (N, S, S, 3) if mode == "RGB"
    mode: str
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)
    ignored: list[Path] = field(default_factory=list)  # files without an image suffix

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)


def list_image_files(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) directly in ``folder``, each sorted by name; hidden files ignored."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{str(folder)!r} is not a folder")
    images, others = [], []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.startswith(".") or not path.is_file():
            continue
        (images if path.suffix.lower() in IMAGE_SUFFIXES else others).append(path)
    return images, others


def _to_8bit(img: "Image.Image") -> "Image.Image":  # noqa: F821
    """16-bit, 32-bit integer and float greyscale to 8-bit L (others unchanged)."""
    from PIL import Image

    if img.mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float64) / 257.0
    elif img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        finite = np.isfinite(arr)
        lo, hi = (float(arr[finite].min()), float(arr[finite].max())) if finite.any() else (0.0, 0.0)
        if lo >= 0.0 and hi <= 255.0 and img.mode == "I":
            pass  # already 8-bit range
        elif 0.0 <= lo and hi <= 1.0 and img.mode == "F":
            arr = arr * 255.0
        else:
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        arr = np.where(finite, arr, 0.0)
    else:
        return img
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")


def read_image(path: str | Path, image_size: int) -> np.ndarray:
    """One file as uint8 (S, S) if grey, (S, S, 3) if colour; raises on any decoding problem."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img.load()  # decode now: a truncated file fails here, not later
        img = ImageOps.exif_transpose(img)  # JPEG orientation tag
        img = _to_8bit(img)
        if img.mode in _GREY_MODES:
            img = img.convert("L")
        else:
            img = img.convert("RGB")  # P, RGBA, CMYK, YCbCr, ... (alpha dropped)
        img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 3 and np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
        arr = arr[..., 0]  # grey stored as RGB
    return np.ascontiguousarray(arr)


def read_folders(
    folders: Sequence[str | Path],
    image_size: int,
    on_error: str = "skip",
    progress: bool | None = None,
) -> list[ImageFolder]:
    """Read several folders into one common mode (RGB if any image of any folder is colour)."""
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if image_size < 1:
        raise ValueError(f"image size must be positive, got {image_size}")
    listed = [list_image_files(folder) for folder in folders]
    loaded: list[tuple[list[Path], list[np.ndarray], list[tuple[Path, str]]]] = []
    for folder, (files, _) in zip(folders, listed):
        paths, arrays, skipped = [], [], []
        bar = tqdm(files, desc=f"reading {Path(folder).name or folder}", leave=False,
                   disable=None if progress is None else not progress)
        for path in bar:
            try:
                arrays.append(read_image(path, image_size))
                paths.append(path)
            except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError ...
                reason = f"{type(err).__name__}: {err}"
                if on_error == "fail":
                    raise UnreadableImageError(path, reason) from err
                skipped.append((path, reason))
        loaded.append((paths, arrays, skipped))
    colour = any(a.ndim == 3 for _, arrays, _ in loaded for a in arrays)
    shape = (image_size, image_size, 3) if colour else (image_size, image_size)
    out = []
    for (paths, arrays, skipped), (_, others) in zip(loaded, listed):
        images = np.empty((len(arrays), *shape), dtype=np.uint8)
        for i, a in enumerate(arrays):
            images[i] = a[..., None] if colour and a.ndim == 2 else a
        out.append(ImageFolder(paths=paths, images=images, mode="RGB" if colour else "L",
                               skipped=skipped, ignored=others))
    return out


def read_folder(
    folder: str | Path, image_size: int, on_error: str = "skip", progress: bool | None = None
) -> ImageFolder:
    return read_folders([folder], image_size, on_error=on_error, progress=progress)[0]

"""The one image reader: every loader that decodes files (MVTec, the chest X-ray sets, the user's
own folder) and ``protolib rank`` read images here, so one file is read the same way everywhere.

Rules (documented in the README, "Use it on your own images"):

* Files: PNG, JPEG, TIFF, BMP (suffix, any case); hidden files and folders (name starting with
  ".") are skipped and listed; folders are read recursively in sorted order; a subfolder that
  cannot be listed is reported; a symbolic link to a folder is not followed, and a
  dangling link or a link loop is reported (:func:`scan_folder`), never silently dropped; only
  regular files are opened (a FIFO, socket or device is reported, not read: it could block).
* Orientation: a JPEG's EXIF orientation tag is applied.
* Frames: of a multi-page TIFF or an animated PNG or GIF only the first frame is read; the
  readers report such files (:attr:`ImageSet.first_frame_only`).
* Depth: 8-bit images are kept as they are. Deeper grey images (16-bit PNG/TIFF, 32-bit integer
  or float TIFF) are scaled to 8 bit by one linear map shared by all images read together (a
  folder), never per image: integers by their bit depth -- the smallest of 8, 10, 12, 14, 16,
  24, 32 bits that holds the largest value of the set, so 12-bit data in 16-bit files keeps
  its 4096 levels -- floats ×255 when every value lies in [0, 1], else (and integers with
  negative values) the set's minimum..maximum. NaN and infinite values become 0, also when the
  image is resized (a resized pixel more than half NaN is NaN). (The chest
  X-ray loaders read one scan at a time and window its deep data to its own range, as they do a
  DICOM's: :func:`read_windowed`.)
* Transparency (RGBA, LA, palette with transparency): when the colour channels carry no content
  (one colour everywhere) the image is its alpha channel as grey (opaque = white), so a
  glyph drawn only in alpha does not turn blank; otherwise the colour is composited over black.
* Channels: ``mode`` grey, rgb, or auto: grey when the file is grey or its three channels are
  equal, else RGB (a set with one colour image is stored RGB: :func:`read_images`).

An unreadable or truncated file fails as one :class:`DatasetFilesError` naming the file, never a
decoder's deep stack trace. Resizing uses Pillow's bilinear filter (antialiased when shrinking),
the same filter family as torchvision's ``Resize``; images are stored as uint8.
"""

from __future__ import annotations

import errno
import importlib
import os
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from protolib.data.base import DatasetFilesError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageSet",
    "center_crop_square",
    "list_images",
    "optional_import",
    "read_image",
    "read_images",
    "resize",
    "scan_folder",
    "to_uint8",
]

#: file name endings the image readers pick up (case-insensitive)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_GREY_MODES = {"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "LA", "La", "RGBa", "PA"}
_INT_BITS = (8, 10, 12, 14, 16, 24, 32)


def optional_import(module: str, pip_name: str, what: str) -> ModuleType:
    """Import a reader only the loader that needs it uses, with the install line when missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DatasetFilesError(
            f"{what} needs the Python package {pip_name!r}, which is not installed; `pip install {pip_name}`"
        ) from None


# ----------------------------------------------------------------------------- listing
@dataclass
class FolderListing:
    """What :func:`scan_folder` found: image files, other files, and links it could not follow."""

    images: list[Path] = field(default_factory=list)
    others: list[Path] = field(default_factory=list)
    broken: list[tuple[Path, str]] = field(default_factory=list)  # (path, reason): bad links, FIFOs, unreadable folders
    hidden: list[Path] = field(default_factory=list)  # files and folders whose name starts with "." (not read)


def _link_problem(path: Path) -> str | None:
    """Why a symbolic link is not read (None for a link to a readable file)."""
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop"
        return f"dangling symbolic link (target {os.readlink(path)!r} does not exist)"
    if os.path.isdir(path):
        return "symbolic link to a folder (not followed)"
    return None


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(path: Path) -> str | None:
    """Why a file (or the file a link points to) is not opened: reading a FIFO blocks until a
    writer comes, a device may never end. None for a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        return f"cannot stat ({err.strerror})"
    if stat.S_ISREG(mode):
        return None
    kind = next((what for test, what in _SPECIAL_FILES if test(mode)), "not a regular file")
    return f"{kind}, not a regular file: not opened"


def scan_folder(folder: Path, recursive: bool = True) -> FolderListing:
    """Files under ``folder`` in sorted order; hidden files and folders (name starting with ".",
    the usual convention: ``.DS_Store``, macOS's ``._*`` copies, ``.git``) are not read but
    listed, as are the links not read and the subfolders that cannot be listed. A ``folder``
    that cannot be listed itself is an error naming it and the system's reason."""
    folder = Path(folder)
    out = FolderListing()

    def unreadable(err: OSError) -> None:
        if Path(err.filename) == folder:
            raise DatasetFilesError(f"cannot read folder {str(folder)!r}: {err.strerror}") from None
        out.broken.append((Path(err.filename), f"folder not read ({err.strerror}): its files are left out"))

    for current, dirs, files in os.walk(folder, onerror=unreadable, followlinks=False):
        here = Path(current)
        out.hidden += [here / d for d in dirs if d.startswith(".")]
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        links = [d for d in dirs if (here / d).is_symlink()]
        is_file = set(files)  # a set: a list's `in` made listing 100 000 files take minutes
        for name in sorted(files + links):
            path = here / name
            if name.startswith("."):
                out.hidden.append(path)
                continue
            problem = _link_problem(path) if path.is_symlink() else None
            if problem is None and name in is_file:
                problem = _not_regular(path)
            if problem:
                out.broken.append((path, problem))
            elif name in is_file:
                (out.images if path.suffix.lower() in IMAGE_SUFFIXES else out.others).append(path)
        dirs[:] = [d for d in dirs if d not in links]
        if not recursive:
            break
    out.images.sort()
    out.others.sort()
    out.hidden.sort()
    return out


def some_names(paths: Sequence[Path], shown: int = 5) -> str:
    """The first ``shown`` file names, then "...": what a message names of a long list."""
    return ", ".join(p.name for p in paths[:shown]) + (", ..." if len(paths) > shown else "")


def list_images(folder: Path, recursive: bool = True) -> list[Path]:
    """Image files under ``folder`` in a stable (sorted) order; hidden files are skipped."""
    return scan_folder(folder, recursive).images


# ----------------------------------------------------------------------------- decoding
@dataclass
class _Decoded:
    """One decoded image before the set's common scaling: ``array`` is uint8 (grey or RGB) or,
    for deeper grey data, float64 with the integer-ness and range of the file's values."""

    array: np.ndarray
    integer: bool = True
    lo: float = 0.0
    hi: float = 255.0
    frames: int = 1  # a multi-page TIFF's pages, an animated PNG's or GIF's frames: only the first is read


def _alpha_rule(img: Any) -> np.ndarray:
    """RGBA/LA -> grey or RGB uint8: alpha as grey when the colour is uniform, else composited over black."""
    rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
    colour, alpha = rgba[..., :3], rgba[..., 3]
    if alpha.min() == 255:
        return colour
    if (colour.reshape(-1, 3) == colour.reshape(-1, 3)[0]).all():
        return alpha
    return np.rint(colour * (alpha[..., None] / 255.0)).astype(np.uint8)


def _decode(img: Any) -> _Decoded:
    # here: PIL only in jobs that decode image files
    from PIL import ImageOps

    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "P" and "transparency" in img.info:
        mode = "PA"
    if mode in _ALPHA_MODES:
        return _Decoded(_alpha_rule(img))
    if mode in ("1", "L"):
        return _Decoded(np.asarray(img.convert("L"), dtype=np.uint8))
    if mode in _GREY_MODES:  # I;16*, I, F: deeper than 8 bits
        arr = np.asarray(img)
        if arr.ndim == 3:  # some 'I;16' variants decode with a trailing axis
            arr = arr[..., 0]
        values = arr.astype(np.float64)
        finite = np.isfinite(values)
        lo, hi = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 0.0)
        return _Decoded(np.where(finite, values, np.nan), np.issubdtype(arr.dtype, np.integer), lo, hi)
    return _Decoded(np.asarray(img.convert("RGB"), dtype=np.uint8))


class LargeImageWarning(UserWarning):
    """A file above Pillow's decompression-bomb limit that is decoded anyway (below twice the
    limit; above it the file is unreadable), named with its size."""


def _open(path: Path, what: str) -> _Decoded:
    # here: PIL only in jobs that decode image files
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # said below, naming the file
            img = Image.open(path)
        with img:
            if Image.MAX_IMAGE_PIXELS and img.width * img.height > Image.MAX_IMAGE_PIXELS:
                warnings.warn(
                    f"{path}: {img.width}x{img.height} pixels, above Pillow's decompression-bomb "
                    f"limit of {Image.MAX_IMAGE_PIXELS}; decoded anyway",
                    LargeImageWarning,
                    stacklevel=2,
                )
            img.load()  # decode now: a truncated file fails here, naming the file
            decoded = _decode(img)
            decoded.frames = int(getattr(img, "n_frames", 1))
            return decoded
    except FileNotFoundError:
        raise DatasetFilesError(f"{path}: {what} file not found") from None
    except UnidentifiedImageError:
        raise DatasetFilesError(f"{path}: not a readable {what} (Pillow cannot identify the format)") from None
    except Image.DecompressionBombError as err:
        raise DatasetFilesError(f"{path}: {what} too large to decode ({err})") from None
    except OSError as err:
        if err.errno is not None:  # the system's error (permission denied, I/O error), not the file's content
            raise DatasetFilesError(f"{path}: cannot open {what} ({err.strerror})") from None
        raise DatasetFilesError(f"{path}: unreadable {what} ({err}); a truncated or corrupt file?") from None
    except (SyntaxError, ValueError) as err:
        raise DatasetFilesError(f"{path}: unreadable {what} ({err}); a truncated or corrupt file?") from None


def _common_scale(decoded: list[_Decoded]) -> tuple[float, float]:
    """(offset, factor) mapping the deep images of one set onto 0..255 (see the module rules)."""
    deep = [d for d in decoded if d.array.dtype != np.uint8]
    lo, hi = min(d.lo for d in deep), max(d.hi for d in deep)
    if all(d.integer for d in deep) and lo >= 0:
        bits = next((b for b in _INT_BITS if hi <= 2**b - 1), 32)
        return 0.0, 255.0 / (2**bits - 1)
    if not any(d.integer for d in deep) and lo >= 0 and hi <= 1:
        return 0.0, 255.0
    return lo, (255.0 / (hi - lo) if hi > lo else 0.0)


def _to_mode(image: np.ndarray, mode: str) -> np.ndarray:
    if image.ndim == 3 and (mode == "grey" or (mode == "auto" and _equal_channels(image))):
        if mode == "auto":
            return np.ascontiguousarray(image[..., 0])
        luma = image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114  # ITU-R 601, as Pillow
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    if image.ndim == 2 and mode == "rgb":
        return np.repeat(image[..., None], 3, axis=-1)
    return image


def _equal_channels(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]))


def _resize_float(array: np.ndarray, size: int) -> np.ndarray:
    """Deep grey data resized before the set's common scaling, its NaN kept NaN (they become 0
    with the scaling, as at the native size): a pixel more than half NaN is NaN, the others are
    the mean of their finite neighbours (a NaN filled before resizing would be scaled with the
    data, mid-grey for values in [-1, 1])."""
    # here: PIL only in jobs that decode image files
    from PIL import Image

    if array.shape == (size, size):
        return array

    def squash(values: np.ndarray) -> np.ndarray:
        out = Image.fromarray(values.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR)
        return np.asarray(out, dtype=np.float64)

    finite = np.isfinite(array)
    if finite.all():
        return squash(array)
    weight = squash(finite.astype(np.float64))
    values = squash(np.where(finite, array, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(weight > 0.5, values / weight, np.nan)


@dataclass
class ImageSet:
    """Images read together: uint8, one common channel layout; ``skipped`` the unreadable files,
    ``first_frame_only`` the multi-frame files of which only the first frame was read."""

    paths: list[Path]
    images: list[np.ndarray]
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    first_frame_only: list[Path] = field(default_factory=list)


def read_images(
    paths: Sequence[Path],
    mode: str = "auto",
    size: int | None = None,
    what: str = "image",
    on_error: str = "fail",
    progress: bool | None = False,
    desc: str = "reading",
) -> ImageSet:
    """Decode files with the module's rules; deep images share one scale; ``size``: squash to
    size x size. ``on_error='skip'`` leaves unreadable files out and lists them in ``skipped``."""
    # here: tqdm only while a folder is decoded
    from tqdm.auto import tqdm

    if mode not in ("auto", "grey", "rgb"):
        raise ValueError(f"color must be auto, grey or rgb, got {mode!r}")
    kept, decoded, skipped = [], [], []
    for path in tqdm(list(paths), desc=desc, leave=False, disable=None if progress is None else not progress):
        try:
            d = _open(Path(path), what)
        except DatasetFilesError as err:
            if on_error != "skip":
                raise
            skipped.append((Path(path), str(err).split(": ", 1)[-1]))
            continue
        if size is not None:
            d.array = _resize_float(d.array, size) if d.array.dtype != np.uint8 else resize(d.array, size)
        kept.append(Path(path))
        decoded.append(d)
    if any(d.array.dtype != np.uint8 for d in decoded):
        offset, factor = _common_scale(decoded)
        for d in decoded:
            if d.array.dtype != np.uint8:
                scaled = np.nan_to_num((d.array - offset) * factor, nan=0.0, posinf=0.0, neginf=0.0)
                d.array = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    images = [_to_mode(d.array, mode) for d in decoded]
    if mode == "auto" and any(im.ndim == 3 for im in images):  # one colour file: the set is RGB
        images = [_to_mode(im, "rgb") for im in images]
    return ImageSet(kept, images, skipped, [p for p, d in zip(kept, decoded) if d.frames > 1])


def read_image(path: Path, mode: str = "auto", what: str = "image") -> np.ndarray:
    """Decode one file into uint8 (H, W) grey or (H, W, 3) RGB (a set of one: see the module rules)."""
    return read_images([path], mode, what=what).images[0]


def read_windowed(path: Path, what: str = "image") -> np.ndarray:
    """One scan as the chest X-ray loaders read it, grey uint8: 8-bit files as they are, deeper
    (grey) data windowed to the image's own minimum..maximum (:func:`to_uint8`), as the loaders
    window a grey DICOM's pixels, so a grey scan reads the same from a DICOM or a 16-bit PNG
    export of it. (A set of one through :func:`read_images` would scale by the file's own bit
    depth instead: 4095 for a maximum of 4000, 16383 for 4096, a 4x darker image for one
    brighter pixel.)"""
    return _to_mode(to_uint8(_open(Path(path), what).array), "grey")


def to_uint8(array: np.ndarray) -> np.ndarray:
    """uint8 as is; any other type min-max scaled per image: the DICOM window of the medical
    loaders (12/16-bit scans use only part of their nominal range). Files read through
    :func:`read_images` are never scaled per image."""
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


def center_crop_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square: X-rays are resized without distorting the anatomy."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def resize(image: np.ndarray, size: int | tuple[int, int], nearest: bool = False) -> np.ndarray:
    """uint8 image -> (size, size) with Pillow's antialiased bilinear filter (nearest for masks)."""
    # here: PIL only in jobs that decode image files
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

"""A reader for the IDX format of the official (Fashion-)MNIST files, gzipped or not.

IDX is tiny and fixed (LeCun's format): two zero bytes, a type code, the number of dimensions,
then one big-endian uint32 per dimension and the values in C order. Reading it ourselves with
``numpy.frombuffer`` keeps loading 70 000 images well under a second, needs no torchvision and
accepts both the upstream ``.gz`` files and decompressed copies (e.g. torchvision's raw folder).
Every error names the file: a wrong folder or a half-downloaded file must be obvious at once.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np

#: IDX type code -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """An IDX file is malformed (bad magic number, truncated, inconsistent with its partner)."""


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it is gzip (detected by content, not by name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: IDX file not found") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise IDXError(f"{path}: truncated gzip stream (incomplete download or copy?)") from None
    except (OSError, zlib.error) as err:
        raise IDXError(f"{path}: corrupt gzip stream ({err})") from None


def parse_idx(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array of the declared shape (native byte order)."""
    if len(data) < 4:
        raise IDXError(f"{source}: {len(data)} bytes, too short for an IDX header (truncated?)")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES or data[3] == 0:
        raise IDXError(
            f"{source}: bad IDX magic number 0x{data[:4].hex()} (expected 0x0000TTNN with type code TT in "
            f"{', '.join(f'{c:02x}' for c in IDX_DTYPES)} and NN >= 1 dimensions); not an IDX file?"
        )
    dtype, ndim = IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{source}: truncated IDX header ({len(data)} bytes, {ndim} dimensions need {header})")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected:
        raise IDXError(
            f"{source}: truncated IDX file: shape {shape} of {dtype.name} needs {expected} bytes, found {len(data)}"
        )
    if len(data) > expected:
        raise IDXError(
            f"{source}: {len(data) - expected} bytes beyond the {expected} that shape {shape} of "
            f"{dtype.name} declares; not a clean IDX file"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or plain); the result may be read-only (a view of the bytes)."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def read_idx_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, H, W) uint8 and labels (N,) int64 from a matching pair of IDX files."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IDXError(f"{images_path}: expected 3-d uint8 images, got shape {images.shape} of {images.dtype}")
    if labels.ndim != 1:
        raise IDXError(f"{labels_path}: expected 1-d labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise IDXError(
            f"count mismatch: {images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    return images, labels.astype(np.int64)


def read_labelled_idx(
    pairs: list[tuple[Path, Path]],
    *,
    dataset: str,
    image_shape: tuple[int, int],
    class_names: list[str],
    error: type[Exception],
    hint: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Read (images, labels) IDX file pairs in order and concatenate them (MNIST-family sets).

    Counts are not enforced, so a reduced copy in the official format also loads; the image size,
    the label range and that every class has images are, since every model and split assumes
    them (one-vs-rest needs each class as normal class and among the anomalies). Every problem
    is raised as ``error`` with the dataset's name, the file and ``hint`` (the expected layout).
    """
    n_classes = len(class_names)
    images, labels = [], []
    for image_file, label_file in pairs:
        try:
            x, y = read_idx_pair(image_file, label_file)
        except (IDXError, FileNotFoundError) as err:
            raise error(f"{dataset}: {err}; {hint}") from None
        if x.shape[1:] != tuple(image_shape):
            raise error(f"{dataset}: {image_file} holds images of {x.shape[1:]}, expected {tuple(image_shape)}; {hint}")
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise error(f"{dataset}: {label_file} has labels outside 0..{n_classes - 1} (min {y.min()}, max {y.max()})")
        images.append(x)
        labels.append(y)
    labels_all = np.concatenate(labels)
    empty = np.flatnonzero(np.bincount(labels_all, minlength=n_classes) == 0)
    if empty.size:
        names = ", ".join(f"{class_names[i]!r} ({i})" for i in empty)
        raise error(
            f"{dataset}: no images of class {names} in {', '.join(str(p) for pair in pairs for p in pair)}; "
            f"an incomplete copy? {hint}"
        )
    return np.ascontiguousarray(np.concatenate(images)), labels_all


def locate_or_download(root: Path, download: bool, find: Any, fetch: Any) -> dict[str, Path]:
    """``find(root)``; when files are missing and ``download`` is set, ``fetch(root)`` once and find again."""
    try:
        return find(root)
    except FileNotFoundError:
        if not download:
            raise
        fetch(root)
        return find(root)

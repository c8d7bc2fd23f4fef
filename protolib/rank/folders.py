"""The folders ``protolib rank`` reads, through the pipeline's one image reader.

Listing and decoding are :mod:`protolib.data.images` (:func:`scan_folder`, :func:`read_images`),
the same rules as the ``folder`` loader: PNG/JPEG/TIFF/BMP, read recursively in sorted order,
EXIF orientation applied, deep images scaled by one map per call (not per image), the alpha rule.
Here only what rank adds: several folders read in one call share one scale and one channel
layout (RGB if any image of any folder is colour, else grey), images are squashed to
``image_size`` x ``image_size``, files are named by their path relative to their folder, and
unreadable files are skipped and reported (or fail the call with ``on_error='fail'``), as are
dangling links and link loops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protolib.data.images import DatasetFilesError, read_images, scan_folder


class UnreadableImageError(ValueError):
    """A file with an image suffix that could not be decoded (``on_error='fail'``)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read image {str(path)!r}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class ImageFolder:
    """The readable images of one folder, in the common mode and size of the call."""

    root: Path
    paths: list[Path]  # one per image, in array order
    images: np.ndarray  # uint8, (N, S, S) if mode == "L", (N, S, S, 3) if mode == "RGB"
    mode: str
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason): unreadable files, bad links
    ignored: list[Path] = field(default_factory=list)  # files without an image suffix

    @property
    def names(self) -> list[str]:
        """Each image's path relative to the folder (``a.png``, ``sub/b.png``)."""
        return [p.relative_to(self.root).as_posix() for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)


def read_folders(
    folders: Sequence[str | Path],
    image_size: int,
    on_error: str = "skip",
    progress: bool | None = None,
) -> list[ImageFolder]:
    """Read several folders in one common scale and mode."""
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if image_size < 1:
        raise ValueError(f"image size must be positive, got {image_size}")
    listings = [scan_folder(Path(folder)) for folder in folders]
    paths = [p for listing in listings for p in listing.images]
    try:
        read = read_images(paths, "auto", size=image_size, on_error=on_error, progress=progress)
    except DatasetFilesError as err:
        path, _, reason = str(err).partition(": ")
        raise UnreadableImageError(Path(path), reason) from err
    colour = any(im.ndim == 3 for im in read.images)
    by_path = dict(zip(read.paths, read.images))
    out = []
    for folder, listing in zip(folders, listings):
        kept = [p for p in listing.images if p in by_path]
        images = np.stack([by_path[p] for p in kept]) if kept else np.empty(
            (0, image_size, image_size, *((3,) if colour else ())), dtype=np.uint8)
        mine = set(listing.images)
        skipped = [(p, r) for p, r in read.skipped if p in mine] + listing.broken
        out.append(ImageFolder(root=Path(folder), paths=kept, images=images, mode="RGB" if colour else "L",
                               skipped=skipped, ignored=listing.others))
    return out


def read_folder(
    folder: str | Path, image_size: int, on_error: str = "skip", progress: bool | None = None
) -> ImageFolder:
    return read_folders([folder], image_size, on_error=on_error, progress=progress)[0]

"""Reading the folders of ``protolib rank``, through the pipeline's one image reader.

Listing and decoding are :mod:`protolib.data.images` (:func:`scan_folder`, :func:`read_images`),
the same rules as the ``folder`` loader: PNG/JPEG/TIFF/BMP, read recursively in sorted order,
EXIF orientation applied, deep images scaled by one map per call (not per image), the alpha rule.
Here only what rank adds: several folders read in one call share one scale and one channel
layout (RGB if any image of any folder is colour, else grey), images are squashed to
``image_size`` x ``image_size``, files are named by their path relative to their folder, and
unreadable files are skipped and reported (or fail the call with ``on_error='fail'``), as are
dangling links and link loops. The checks on the folders, the output folder
(:mod:`protolib.rank.out_folder`) and the file names run before any compute.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from protolib.data.base import DatasetFilesError
from protolib.data.images import FolderListing, LargeImageWarning, read_images, scan_folder, some_names
from protolib.rank.memory import check_memory, estimate_peak
from protolib.rank.options import RankError, RankOptions
from protolib.rank.out_folder import check_out_dir


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
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, reason): unreadable files, folders, links
    ignored: list[Path] = field(default_factory=list)  # files without an image suffix
    hidden: list[Path] = field(default_factory=list)  # files and folders named ".*": not read
    first_frame_only: list[Path] = field(default_factory=list)  # multi-page TIFFs, animated PNGs: frame 1 ranked

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
    listings: Sequence[FolderListing] | None = None,
) -> list[ImageFolder]:
    """Read several folders in one common scale and mode (``listings``: their
    :func:`scan_folder`, when the caller has it)."""
    if on_error not in ("skip", "fail"):
        raise ValueError(f"on_error must be 'skip' or 'fail', got {on_error!r}")
    if image_size < 1:
        raise ValueError(f"image size must be positive, got {image_size}")
    if listings is None:
        listings = [listed(Path(folder)) for folder in folders]
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
        images = (
            np.stack([by_path[p] for p in kept])
            if kept
            else np.empty((0, image_size, image_size, *((3,) if colour else ())), dtype=np.uint8)
        )
        mine = set(listing.images)
        skipped = [(p, r) for p, r in read.skipped if p in mine] + listing.broken
        out.append(
            ImageFolder(
                root=Path(folder),
                paths=kept,
                images=images,
                mode="RGB" if colour else "L",
                skipped=skipped,
                ignored=listing.others,
                hidden=listing.hidden,
                first_frame_only=[p for p in read.first_frame_only if p in mine],
            )
        )
    return out


def read_folder(
    folder: str | Path, image_size: int, on_error: str = "skip", progress: bool | None = None
) -> ImageFolder:
    return read_folders([folder], image_size, on_error=on_error, progress=progress)[0]


#: the option that names each input folder, in read order
FOLDER_OPTIONS = ("IMAGES_DIR", "--val-normal", "--val-anomalous")


@dataclass
class Listed:
    """The input folders (the folder to rank, then the val folders), checked and listed; nothing decoded."""

    folders: list[Path]
    listings: list[FolderListing]
    size: int


def check_inputs(images_dir: Path, out_dir: Path, opts: RankOptions) -> list[Path]:
    """The folder to rank and the val folders (normal, anomalous) if given: each an existing
    folder, none inside another, ``--out`` outside them all (nothing listed yet)."""
    folders = [images_dir] + ([Path(opts.val_normal), Path(opts.val_anomalous)] if opts.with_val else [])
    for folder in folders:
        if not folder.exists():
            raise RankError(f"folder {str(folder)!r} does not exist")
        if not folder.is_dir():
            raise RankError(f"{str(folder)!r} is not a folder")
    check_out_dir(out_dir, folders)
    check_separate(dict(zip(FOLDER_OPTIONS, folders)))
    return folders


def list_inputs(folders: list[Path], opts: RankOptions, size: int, backbone: str = "pixels") -> Listed:
    """The folders of :func:`check_inputs`, listed: what the options and the listing decide
    (``-M`` against the files listed, empty folders, and the estimated peak memory,
    :mod:`protolib.rank.memory`) is refused before any image is decoded."""
    images_dir = folders[0]
    listings = [listed(folder) for folder in folders]
    check_names([p for listing in listings for p in listing.images])
    for option, folder, listing in zip(FOLDER_OPTIONS, folders, listings):
        if not listing.images:
            raise RankError(f"{_named(option, folder)} has no PNG, JPEG, TIFF or BMP files{_broken(listing)}")
    n = len(listings[0].images)
    if n < opts.M:
        raise RankError(f"M = {opts.M} is larger than the {n} image files listed in {str(images_dir)!r}")
    channels, largest = _peek([p for listing in listings for p in listing.images])
    total = sum(len(listing.images) for listing in listings)
    parts = estimate_peak(total, n, size, channels, backbone, opts.batch_size, largest)
    check_memory(parts, f"ranking {n} images at {size}x{size} ({backbone} features)")
    return Listed(folders, listings, size)


def read_inputs(listed: Listed, opts: RankOptions, log: Callable[[str], None]) -> list[ImageFolder]:
    """The listed folders, decoded at ``size`` x ``size``; skipped and ignored files are reported
    through ``log``."""
    try:
        with warnings.catch_warnings(record=True) as large:
            warnings.simplefilter("always", LargeImageWarning)
            read = read_folders(
                listed.folders, listed.size, on_error=opts.on_error, progress=opts.progress, listings=listed.listings
            )
    except UnreadableImageError as err:
        raise RankError(f"{err} (use --on-error skip to leave it out)") from err
    for warning in large:
        log(f"note: {warning.message}")
    release_free_heap()
    for option, folder, data in zip(FOLDER_OPTIONS, listed.folders, read):
        _report(_named(option, folder), data, log)
    return read


def _named(option: str, folder: Path) -> str:
    return f"folder {str(folder)!r}" if option == FOLDER_OPTIONS[0] else f"{option} {str(folder)!r}"


def _broken(listing: FolderListing) -> str:
    if not listing.broken:
        return ""
    return f" that can be read (skipped: {some_names([p for p, _ in listing.broken])}: links or special files)"


def listed(folder: Path) -> FolderListing:
    """:func:`scan_folder`, a folder that cannot be listed (no permission) a :class:`RankError`."""
    try:
        return scan_folder(folder)
    except DatasetFilesError as err:
        raise RankError(str(err)) from None


def release_free_heap() -> None:
    """Give the heap's free pages back to the system (glibc's ``malloc_trim``): decoding many
    small images one at a time leaves hundreds of MB free but held, which would add to the
    peak of the stages after reading. A no-op where there is no glibc."""

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def _peek(paths: list[Path], count: int = 64) -> tuple[int, int]:
    """(channels, largest pixel count) from the headers of the first ``count`` files (nothing
    decoded): 3 if any is colour, else 1."""

    channels, largest = 1, 0
    for path in paths[:count]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the reader notes it, naming the file
                with Image.open(path) as img:
                    channels = max(channels, 1 if img.mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "F") else 3)
                    largest = max(largest, img.width * img.height)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):  # reported when it is read
            pass
    return channels, largest


def _report(named: str, data: ImageFolder, log: Callable[[str], None]) -> None:
    for path, reason in data.skipped:
        log(f"warning: skipped {str(path)!r}: {reason}")
    if data.ignored:
        log(
            f"note: ignored {len(data.ignored)} file(s) in {named} that are not PNG, JPEG, TIFF or BMP: "
            f"{some_names(data.ignored)}"
        )
    if data.first_frame_only:
        log(
            f"note: {len(data.first_frame_only)} file(s) in {named} hold several frames (multi-page TIFF, "
            f"animated PNG); only the first frame of each is ranked (listed in summary.json): "
            f"{some_names(data.first_frame_only)}"
        )
    if data.hidden:
        log(
            f"note: skipped {len(data.hidden)} hidden file(s) and folder(s) in {named} (name starting "
            f"with '.'; listed in summary.json): {some_names(data.hidden)}"
        )
    if len(data) == 0:
        raise RankError(f"no images to rank in {named}: none of its {len(data.skipped)} image files could be read")


def check_separate(folders: dict[str, Path]) -> None:
    """No input folder may be, or lie inside, another (by option name): folders are read with
    their subfolders, so val images inside IMAGES_DIR would also be ranked and selected as
    training images (and every val AUROC inflated), and one folder given as both val folders
    would label the same images normal and anomalous."""
    resolved = {name: folder.resolve() for name, folder in folders.items()}
    for name, folder in resolved.items():
        for other, inner in resolved.items():
            if other != name and (inner == folder or folder in inner.parents):
                where = "is the same folder as" if inner == folder else "is inside"
                raise RankError(
                    f"{other} {str(folders[other])!r} {where} {name} {str(folders[name])!r}: folders are "
                    "read with their subfolders, so its images would be read as both; give folders "
                    "that do not contain each other"
                )


def check_names(paths: list[Path]) -> None:
    """File names must be writable to the UTF-8 outputs (checked on the listing)."""
    for path in paths:
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            raise RankError(
                f"file name {path!r} is not valid UTF-8; rename it (the outputs name every file in UTF-8 CSV and JSON)"
            ) from None

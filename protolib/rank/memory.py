"""The memory a ``protolib rank`` run will need, estimated before any image is decoded, so a run
that cannot fit is refused with the numbers instead of being killed by the kernel hours later.

The estimate adds what is held at the peak (see :mod:`protolib.selection.typicality` for the
neighbour stage): the decoded images at ``image_size`` (uint8), the features (float32, plus the
float64 copy the exact path works in), one image decoded at full size before resizing, a batch
of network activations, and the neighbour stage's distances (the n x n matrix up to
``EXACT_MAX`` images, the candidates and their distance tiles above). It is a bound, not a measurement: generous
per item so that what it passes fits.
"""

from __future__ import annotations

import psutil

from protolib.rank.options import RankError
from protolib.selection.typicality_scaled import neighbour_stage_bytes

#: largest ``--image-size``: 2048 x 2048 RGB is already 12 MB per image and 50 MB of pixel features
MAX_IMAGE_SIZE = 2048
#: Python, numpy, torch and the libraries, before any data
BASE_BYTES = 600 * 2**20
#: the widest pooled feature of the built-in backbones (ResNet-152, Wide ResNet-50: 2048)
NETWORK_DIM = 2048
#: a ResNet's live activations per input pixel at inference (conv1 + a bottleneck block, float32)
ACTIVATION_BYTES_PER_PIXEL = 200


def check_image_size(size: int) -> None:
    if size > MAX_IMAGE_SIZE:
        raise RankError(
            f"--image-size {size} is larger than the largest allowed, {MAX_IMAGE_SIZE} (images are "
            "squashed to size x size before embedding: the paper uses 64 for pixels, 224 for ResNets)"
        )


def estimate_peak(
    n_images: int, n_train: int, size: int, channels: int, backbone: str, batch_size: int, largest_pixels: int = 0
) -> dict[str, int]:
    """Bytes held at the peak, by part: ``n_images`` read in all (train + val), ``n_train``
    ranked; ``largest_pixels``: the largest file's pixel count (one decoded at a time)."""

    dim = size * size * channels if backbone == "pixels" else NETWORK_DIM
    parts = {
        "libraries": BASE_BYTES,
        "images": n_images * size * size * channels,
        "features": n_images * dim * 4 + n_train * dim * 8,
        "decoding one image": max(largest_pixels, size * size) * channels * 8 * 2,
        "neighbours and core-set": neighbour_stage_bytes(n_train, dim),
    }
    if backbone != "pixels":
        parts["network batch"] = batch_size * size * size * ACTIVATION_BYTES_PER_PIXEL
    return parts


def available_memory() -> int:
    """Bytes the kernel can give without swapping (psutil's ``available``)."""

    return int(psutil.virtual_memory().available)


def check_memory(parts: dict[str, int], what: str) -> int:
    """Refuse a run whose estimated peak exceeds the available memory; the estimate otherwise."""
    total, free = sum(parts.values()), available_memory()
    if total > free:
        biggest = max(parts, key=parts.__getitem__)
        raise RankError(
            f"{what} would need about {_gb(total)} of memory at its peak ({biggest}: {_gb(parts[biggest])}), "
            f"but {_gb(free)} is available; use a smaller --image-size, fewer images, or a machine "
            "with more memory"
        )
    return total


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB"

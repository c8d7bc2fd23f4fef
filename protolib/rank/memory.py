"""The memory a ``protolib rank`` run will need, estimated before any image is decoded, so a run
that cannot fit is refused with the numbers instead of being killed by the kernel hours later.

The estimate adds what is held at the peak (see :mod:`protolib.selection.typicality` for the
neighbour stage): the decoded images at ``image_size`` (uint8), the features (float32, plus the
float64 copy the exact path works in), one image decoded at full size before resizing, a batch
of network activations, torch and the network's weights, and the neighbour stage's distances
(the n x n matrix up to ``EXACT_MAX`` images, the candidates and their distance tiles above).
Up to ``EXACT_MAX`` images the distance matrix is computed from two float64 copies of the
features plus one float64 temporary of the same size (the squared norms' products), so three
float64 copies are live at once. It is a bound, not a measurement: on top of these parts a
``MARGIN`` of their sum, so that what it passes fits (docs/rank.md: measured peaks against it).

The memory available is psutil's ``available``, or less under a cgroup's memory limit (a
container, a SLURM job): the limit less the cgroup's working set.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from protolib.rank.options import RankError
from protolib.selection.typicality_scaled import EXACT_MAX, neighbour_stage_bytes

#: largest ``--image-size``: 2048 x 2048 RGB is already 12 MB per image and 50 MB of pixel features
MAX_IMAGE_SIZE = 2048
#: Python, numpy, torch and the libraries, before any data
BASE_BYTES = 600 * 2**20
#: the widest pooled feature of the built-in backbones (ResNet-152, Wide ResNet-50: 2048)
NETWORK_DIM = 2048
#: a ResNet's live activations per input pixel at inference (conv1 + a bottleneck block, float32)
ACTIVATION_BYTES_PER_PIXEL = 200
#: torch's own memory once imported and running (beyond ``BASE_BYTES``), measured 0.45 GiB
TORCH_BYTES = 512 * 2**20
#: parameters of the network backbones (torchvision's); a name not listed counts as the largest
NETWORK_PARAMETERS = {
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "resnet152": 60_192_808,
    "wide_resnet50_2": 68_883_240,
}
#: added to the sum of the parts: what the parts do not name (allocator slack, small copies)
MARGIN = 0.10
#: where the cgroup file system is mounted (v2: memory.max; v1: memory/memory.limit_in_bytes)
CGROUP_ROOT = Path("/sys/fs/cgroup")


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
    if n_train <= EXACT_MAX:  # the squared norms' float64 temporary beside the two copies
        parts["distance temporaries"] = n_train * dim * 8
    if backbone != "pixels":
        parts["network batch"] = batch_size * size * size * ACTIVATION_BYTES_PER_PIXEL
        # the weights, and their copy while a state_dict is loaded or the layers initialised
        weights = NETWORK_PARAMETERS.get(backbone, max(NETWORK_PARAMETERS.values()))
        parts["torch and the network"] = TORCH_BYTES + 8 * weights
    parts["margin"] = int(MARGIN * sum(parts.values()))
    return parts


def available_memory(cgroup_root: Path = CGROUP_ROOT) -> int:
    """Bytes the kernel can give without swapping (psutil's ``available``), or less when a
    cgroup memory limit leaves less: psutil sees the whole machine, the limit kills first."""

    free = int(psutil.virtual_memory().available)
    headroom = cgroup_headroom(cgroup_root)
    return free if headroom is None else min(free, headroom)


def cgroup_headroom(root: Path = CGROUP_ROOT) -> int | None:
    """The cgroup's memory limit less its working set (usage less the inactive page cache, which
    the kernel reclaims first), cgroup v2 or v1; None without a limit or a readable cgroup."""

    versions = (
        (root / "memory.max", root / "memory.current", root / "memory.stat", "inactive_file"),
        (
            root / "memory" / "memory.limit_in_bytes",
            root / "memory" / "memory.usage_in_bytes",
            root / "memory" / "memory.stat",
            "total_inactive_file",
        ),
    )
    for limit_file, usage_file, stat_file, inactive_key in versions:
        try:
            limit = limit_file.read_text().strip()
            usage = int(usage_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if not limit.isdigit() or int(limit) >= 2**60:  # "max" (v2), or v1's page-rounded 2**63
            return None
        return max(int(limit) - usage + _stat_value(stat_file, inactive_key), 0)
    return None


def _stat_value(path: Path, key: str) -> int:
    """One ``key value`` line of a cgroup's memory.stat (0 when absent)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    values = dict(line.split(maxsplit=1) for line in lines if " " in line)
    return int(values.get(key, 0))


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

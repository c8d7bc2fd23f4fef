"""``protolib rank``'s memory estimate against the measured peak (not a test).

For each case a synthetic folder of grey JPEGs (smooth random content, 1.25 x the image size, so
every image is decoded larger than it is kept; ``--rgb``: colour) is written under ``--workdir``; ``protolib rank``
runs on it in its own process under ``/usr/bin/time -v`` (CPU, ``-q``), and its maximum resident
set size is printed beside the estimate the run itself checks (:mod:`protolib.rank.memory`,
with the same listing and header peek as ``read_inputs``).

Run:  python benchmarks/bench_rank_memory.py [--cases pixels-2048 ...] [--workdir /tmp/bench_rank_memory]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np
from PIL import Image

from protolib.data.images import scan_folder
from protolib.rank.folders import _peek
from protolib.rank.memory import estimate_peak

#: name -> (images, image size, backbone, batch size)
CASES = {
    "pixels-2048": (50, 2048, "pixels", 64),
    "pixels-512": (300, 512, "pixels", 64),
    "pixels-1024": (50, 1024, "pixels", 64),
    "resnet50-224": (200, 224, "resnet50", 64),
    "resnet50-448": (140, 448, "resnet50", 70),
}


def make_folder(folder: Path, n: int, side: int, channels: tuple[int, ...]) -> None:
    """n JPEGs of side x side pixels: a random low-resolution image upsampled, plus noise."""
    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == n:
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        small = Image.fromarray(rng.integers(0, 256, (16, 16, *channels), dtype=np.uint8)).resize((side, side))
        noisy = np.asarray(small, dtype=np.int16) + rng.integers(-8, 9, (side, side, *channels), dtype=np.int16)
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(folder / f"img_{i:04d}.jpg", quality=90)


def measure(folder: Path, out: Path, size: int, backbone: str, batch: int) -> tuple[list[str], int]:
    """The command and its maximum resident set size in bytes."""
    cmd = [sys.executable, "-m", "protolib", "rank", str(folder), "--out", str(out), "-q", "--device", "cpu"]
    cmd += ["--image-size", str(size), "--batch-size", str(batch)]
    if backbone != "pixels":
        cmd += ["--backbone", backbone, "--weights", "none"]
    run = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(run.stderr[-3000:])
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    return cmd, kb * 1024


def estimate(folder: Path, size: int, backbone: str, batch: int) -> dict[str, int]:
    """The estimate ``read_inputs`` checks for this folder."""
    listing = scan_folder(folder)
    channels, largest = _peek(listing.images)
    n = len(listing.images)
    return estimate_peak(n, n, size, channels, backbone, batch, largest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench_rank_memory"))
    parser.add_argument("--rgb", action="store_true", help="colour images (3 x the grey memory for pixels)")
    args = parser.parse_args()
    gib = 2**30
    for name in args.cases:
        n, size, backbone, batch = CASES[name]
        folder = args.workdir / f"{n}x{int(size * 1.25)}{'_rgb' if args.rgb else ''}"
        make_folder(folder, n, int(size * 1.25), (3,) if args.rgb else ())
        parts = estimate(folder, size, backbone, batch)
        cmd, peak = measure(folder, args.workdir / f"out_{name}", size, backbone, batch)
        total = sum(parts.values())
        print(
            f"{name}: estimate {total / gib:.2f} GiB, measured max RSS {peak / gib:.2f} GiB, "
            f"estimate / measured {total / peak:.2f}",
            flush=True,
        )
        print("   ", " ".join(cmd[1:]), flush=True)
        print("   ", {k: round(v / gib, 3) for k, v in parts.items()}, flush=True)


if __name__ == "__main__":
    main()

"""Mutation check of the detectors' cross-check tests (not a test: it runs tests).

Each documented setting (a constructor default, or the one line of a rule) is flipped in turn in
a scratch copy of ``protolib/`` and ``tests/``, and the cross-check tests that guard it are run
there; the table says which test fails. A mutation that fails no test is ``SURVIVED``: that
cross-check has lost its power, and the exit status is 1. The unmutated copy runs first and must
pass. Each mutation's ``old`` text must occur exactly once in its file (else the script stops,
naming it), so an edit that moves the setting shows up here rather than silently checking
nothing.

Run (minutes on a CPU):  python benchmarks/mutation_check.py [--only NAME ...] [--list]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FAE_TESTS = (
    "tests/test_fae_reference.py::test_untrained_maps_loss_and_scores_equal_the_reference",
    "tests/test_fae_reference.py::test_training_steps_equal_the_reference_train_step",
)
PATCHCORE_TESTS = (
    "tests/test_patchcore_reference.py",
    "tests/test_anomalib_crosscheck.py::test_patchcore_feature_maps_agree_with_anomalib",
    "tests/test_anomalib_crosscheck.py::test_patchcore_image_scores_agree_with_anomalib_on_the_same_memory_bank",
)
# the behavioural checks first (pytest -x reports the first failure), the defaults' check after
RD_TESTS = (
    "tests/test_rd_reference.py::test_defaults_agree_with_anomalib_unblurred_and_upd_studys_mean_score",
    "tests/test_anomalib_crosscheck.py::test_reverse_distillation_maps_loss_and_anomaly_map_agree_with_anomalib",
    "tests/test_rd_reference.py::test_defaults_are_upd_studys_chest_xray_settings",
)


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # file under the repository root
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = [
    Mutation(
        "fae.layers: stem+layer1-2 -> layer1-3",
        "protolib/models/fae.py",
        'layers: tuple[str, ...] = ("layer0", "layer1", "layer2")',
        'layers: tuple[str, ...] = ("layer1", "layer2", "layer3")',
        FAE_TESTS,
    ),
    Mutation(
        "fae.center_input: [-1, 1] -> [0, 1]",
        "protolib/models/fae.py",
        "center_input: bool = True",
        "center_input: bool = False",
        FAE_TESTS,
    ),
    Mutation(
        "fae.ssim_window: 5 -> 11", "protolib/models/fae.py", "ssim_window: int = 5", "ssim_window: int = 11", FAE_TESTS
    ),
    Mutation(
        "fae.encoder_final_conv: on -> off",
        "protolib/models/fae.py",
        "encoder_final_conv: bool = True",
        "encoder_final_conv: bool = False",
        FAE_TESTS,
    ),
    Mutation(
        "fae.train_batch_size: 32 -> 64",
        "protolib/models/fae.py",
        "train_batch_size: int = 32",
        "train_batch_size: int = 64",
        FAE_TESTS,
    ),
    Mutation(
        "fae.top_fraction: 0.1 -> 0.5",
        "protolib/models/fae.py",
        "top_fraction: float = 0.1",
        "top_fraction: float = 0.5",
        FAE_TESTS,
    ),
    Mutation(
        "fae.extractor_bn: batch -> imagenet",
        "protolib/models/fae.py",
        'extractor_bn: str = "batch"',
        'extractor_bn: str = "imagenet"',
        FAE_TESTS,
    ),
    Mutation(
        "patchcore: per-layer channel pooling off (concatenate)",
        "protolib/models/patchcore.py",
        "per_layer.append(_pool_channels(m.permute(0, 2, 3, 1), self.pretrain_embed_dim))",
        "per_layer.append(m.permute(0, 2, 3, 1))",
        PATCHCORE_TESTS,
    ),
    Mutation(
        "patchcore: layer3 resized with align_corners",
        "protolib/models/patchcore.py",
        'm = F.interpolate(m, size=ref, mode="bilinear", align_corners=False)',
        'm = F.interpolate(m, size=ref, mode="bilinear", align_corners=True)',
        PATCHCORE_TESTS,
    ),
    Mutation(
        "patchcore: core-set without its random projection",
        "protolib/models/patchcore.py",
        "reduced = features @ projection if projection is not None else features",
        "reduced = features",
        PATCHCORE_TESTS,
    ),
    Mutation(
        "patchcore: core-set starts from 1 point, not 10",
        "protolib/models/patchcore.py",
        "coreset_starts: int = 10",
        "coreset_starts: int = 1",
        PATCHCORE_TESTS,
    ),
    Mutation(
        "patchcore: plain (not squared) NN distance",
        "protolib/models/patchcore.py",
        "return self.patch_scores(images).amax(dim=(1, 2)).double().cpu().numpy()",
        "return self.patch_scores(images).sqrt().amax(dim=(1, 2)).double().cpu().numpy()",
        PATCHCORE_TESTS,
    ),
    Mutation(
        "patchcore: score mean over patches, not max",
        "protolib/models/patchcore.py",
        "return self.patch_scores(images).amax(dim=(1, 2)).double().cpu().numpy()",
        "return self.patch_scores(images).mean(dim=(1, 2)).double().cpu().numpy()",
        PATCHCORE_TESTS,
    ),
    Mutation(
        "rd.score_reduce: mean -> max",
        "protolib/models/rd.py",
        'score_reduce: str = "mean"',
        'score_reduce: str = "max"',
        RD_TESTS,
    ),
    Mutation(
        "rd.imagenet_norm: off -> on",
        "protolib/models/rd.py",
        "imagenet_norm: bool = False",
        "imagenet_norm: bool = True",
        RD_TESTS,
    ),
    Mutation(
        "rd.map_sigma: 0 -> 4", "protolib/models/rd.py", "map_sigma: float = 0.0", "map_sigma: float = 4.0", RD_TESTS
    ),
    Mutation(
        "rd.train_batch_size: 4 -> 16",
        "protolib/models/rd.py",
        "train_batch_size: int = 4",
        "train_batch_size: int = 16",
        RD_TESTS,
    ),
]


def scratch_copy(dest: Path) -> None:
    """protolib/, tests/ and pyproject.toml (pytest's settings) of this checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in ("protolib", "tests"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")


def apply(root: Path, m: Mutation) -> None:
    path = root / m.path
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        raise SystemExit(f"mutation {m.name!r}: {m.path} holds its text {count} times, expected once: {m.old!r}")
    path.write_text(text.replace(m.old, m.new))


def run_tests(root: Path, tests: tuple[str, ...], timeout: int) -> tuple[bool, str, float]:
    """(passed, first failing test or error line, seconds) of pytest -x in ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return False, f"timeout after {timeout} s", time.monotonic() - start
    seconds = time.monotonic() - start
    if proc.returncode == 0:
        return True, "", seconds
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", proc.stdout, flags=re.M)
    return False, failed[0] if failed else proc.stdout.strip().splitlines()[-1], seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="mutations whose name contains one of these")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per pytest run")
    args = ap.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or any(s in m.name for s in args.only)]
    if args.list:
        print("\n".join(m.name for m in chosen))
        return 0
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        base = Path(tmp) / "base"
        scratch_copy(base)
        for m in chosen:  # every mutation's text is where it is expected, before anything runs
            if (base / m.path).read_text().count(m.old) != 1:
                raise SystemExit(f"mutation {m.name!r}: its text is not in {m.path} exactly once: {m.old!r}")
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        ok, what, secs = run_tests(base, tests, args.timeout)
        print(f"unmutated: {'pass' if ok else 'FAIL ' + what} ({secs:.0f} s)", flush=True)
        if not ok:
            return 2
        rows, survived = [], 0
        for i, m in enumerate(chosen):
            root = Path(tmp) / f"m{i}"
            scratch_copy(root)
            apply(root, m)
            ok, what, secs = run_tests(root, m.tests, args.timeout)
            shutil.rmtree(root)
            survived += ok
            rows.append((m.name, "SURVIVED (no test fails)" if ok else f"fails {what}", f"{secs:.0f} s"))
            print(f"  {rows[-1][0]}: {rows[-1][1]} ({rows[-1][2]})", flush=True)
    widths = [max(len(r[i]) for r in [("mutation", "result", "time"), *rows]) for i in range(3)]
    print()
    for r in [("mutation", "result", "time"), tuple("-" * w for w in widths), *rows]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())

"""Tiny copies of paper datasets in their OFFICIAL on-disk format that several loader tests use,
and the checks every loader test shares.

None of CIFAR-10/100, MNIST (full), MVTec-AD, BraTS, RSNA or CheXpert can be downloaded on these
machines, so each loader's tests (one file per loader) write a reduced copy in the real format
and run it through the loader and the split protocol: sizes, disjointness, label mapping,
determinism for the seed, and one clear error (naming the file or folder, no chained traceback)
for each broken input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protolib.data import ImageDataset
from protolib.data.base import SPLIT_PROTOCOLS
from protolib.data.splits import Split, one_vs_rest_split


def assert_clear(excinfo: pytest.ExceptionInfo, *needles: str) -> str:
    """The error names what it must, and carries no chained traceback (``raise ... from None``)."""
    err = excinfo.value
    message = str(err)
    for needle in needles:
        assert needle in message, f"{needle!r} not in error message: {message}"
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__), (
        f"error chains another exception (a deep traceback): {err.__context__!r}"
    )
    return message


def split_of(data: ImageDataset, cls: int | str, cfg: dict[str, Any], seed: int = 0, key: str = "ds") -> Split:
    """The split the ``split`` rule builds: the dataset's own protocol, else one-vs-rest."""
    cfg = {"candidates": 300, **cfg}  # the schema's default, which a validated config always has
    idx = data.class_index(cls)
    protocol = SPLIT_PROTOCOLS.get(cfg["loader"])
    if protocol is not None:
        split = protocol(data, idx, cfg, seed, key)
    else:
        split = one_vs_rest_split(
            data.labels,
            idx,
            dataset=key,
            class_name=data.class_names[idx],
            train=cfg["split"]["train"],
            anomalies_per_other_class=cfg["split"]["anomalies_per_other_class"],
            candidates=cfg["candidates"],
            seed=seed,
            min_normal_eval=1,  # tiny copies of the official files; the minimum itself: test_bad_input
        )
    split.check()
    return split


def assert_disjoint(split: Split) -> None:
    for a, b in [(split.train, split.val_ids), (split.train, split.test_ids), (split.val_ids, split.test_ids)]:
        assert np.intersect1d(a, b).size == 0
    assert np.isin(split.candidates, split.train).all()
    assert len(np.unique(split.candidates)) == len(split.candidates)


def assert_deterministic(data: ImageDataset, cls: int | str, cfg: dict[str, Any]) -> None:
    a, b = split_of(data, cls, cfg, seed=3), split_of(data, cls, cfg, seed=3)
    assert a.to_dict() == b.to_dict()
    c = split_of(data, cls, cfg, seed=4)
    assert a.to_dict() != c.to_dict(), "another seed must give another split"


def _png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def make_mvtec(root: Path, textures: dict[str, np.ndarray], size: int = 64) -> None:
    """carpet (colour, from brick) and grid (grey, from gravel): 6 train/good, test good 4, cut 3, hole 3."""
    rng = np.random.default_rng(5)
    for category, texture, colour in (("carpet", "brick", True), ("grid", "gravel", False)):
        source = textures[texture]

        def crop(source: np.ndarray = source, colour: bool = colour) -> np.ndarray:
            top, left = rng.integers(0, source.shape[0] - size, size=2)
            patch = source[top : top + size, left : left + size]
            if colour:  # a tinted RGB texture
                patch = np.stack([patch, (patch * 0.8).astype(np.uint8), (patch * 0.5).astype(np.uint8)], axis=-1)
            return np.ascontiguousarray(patch)

        for i in range(6):
            _png(root / category / "train" / "good" / f"{i:03d}.png", crop())
        for i in range(4):
            _png(root / category / "test" / "good" / f"{i:03d}.png", crop())
        for defect in ("cut", "hole"):
            for i in range(3):
                image, mask = crop(), np.zeros((size, size), dtype=np.uint8)
                r, c = rng.integers(8, size - 24, size=2)
                if defect == "cut":
                    mask[r : r + 16, c : c + 3] = 255
                    image[mask > 0] = 0
                else:
                    yy, xx = np.ogrid[:size, :size]
                    mask[(yy - r - 8) ** 2 + (xx - c - 8) ** 2 <= 36] = 255
                    image[mask > 0] = 255
                _png(root / category / "test" / defect / f"{i:03d}.png", image)
                _png(root / category / "ground_truth" / defect / f"{i:03d}_mask.png", mask)


def make_brats(root: Path, brain: tuple[np.ndarray, np.ndarray], n_patients: int = 8) -> None:
    """Patients 1-4 have a lesion in slices 7-9 (of the 5 centre slices 6-10); 5-8 are healthy.
    Patient 8's segmentation has BraTS20_Training_355's odd name."""
    import nibabel as nib

    volume, affine = brain
    rng = np.random.default_rng(2)
    nx, ny, _ = volume.shape
    for i in range(1, n_patients + 1):
        name = f"BraTS20_Training_{i:03d}"
        t2 = volume * (1 + 0.05 * i) + rng.normal(0, 1, volume.shape) * (volume > 0)
        seg = np.zeros(volume.shape, dtype=np.uint8)
        if i <= 4:
            xx, yy = np.ogrid[:nx, :ny]
            disc = (xx - nx // 2 - i) ** 2 + (yy - ny // 2) ** 2 <= 25
            for z, label in ((7, 2), (8, 4), (9, 1)):
                seg[:, :, z][disc] = label
                t2[:, :, z][disc] *= 1.8
        folder = root / name
        folder.mkdir(parents=True)
        nib.save(nib.Nifti1Image(t2.astype(np.int16), affine), str(folder / f"{name}_t2.nii.gz"))
        seg_name = "W39_1998.09.19_Segm.nii" if i == 8 else f"{name}_seg.nii.gz"
        nib.save(nib.Nifti1Image(seg, affine), str(folder / seg_name))
        nib.save(nib.Nifti1Image(t2.astype(np.int16) // 2, affine), str(folder / f"{name}_flair.nii.gz"))
    (root / "name_mapping.csv").write_text("BraTS_2020_subject_ID\n")  # files beside the folders are ignored


def check_balanced(data: ImageDataset, ids: np.ndarray, per_cell: int) -> None:
    """Equally many images per sex x age group x label cell; nobody middle-aged or of unknown sex."""
    from protolib.data.medical_split import age_groups

    group = age_groups(data.meta["age"])
    assert set(group[ids].tolist()) <= {"young", "old"} and set(data.meta["sex"][ids].tolist()) <= {"M", "F"}
    cells: dict[tuple, int] = {}
    for i in ids:
        key = (data.meta["sex"][i], group[i], bool(data.meta["anomalous"][i]))
        cells[key] = cells.get(key, 0) + 1
    assert len(cells) == 8 and set(cells.values()) == {per_cell}

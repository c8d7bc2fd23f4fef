"""The medical loaders follow the reference code on the points the paper leaves open:
patient-disjoint X-ray splits and plausible ages (FeliMe/unsupervised_fairness ``chexpert.py``),
BraTS volumes equalised as a whole after resizing (iolag/UPD_study ``mri_preprocessing.py``) and
glioma slices only above 16 lesion pixels (unsupervised_fairness ``camcan_brats.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protolib.data import load_dataset
from protolib.data.base import ImageDataset
from protolib.data.medical import brats_volume
from protolib.data.medical_split import age_groups, xray_split


def test_implausible_ages_join_no_age_group():
    ages = np.array([0, 5, 31, 61, 109.5, 110, 148, 155, np.nan])
    assert age_groups(ages).tolist() == ["", "young", "young", "old", "old", "", "", "", ""]


def test_xray_train_val_test_are_patient_disjoint():
    rng = np.random.default_rng(0)
    n = 600
    patients = rng.integers(0, 150, n)  # about 4 images per patient
    data = ImageDataset(
        name="chexpert",
        images=np.zeros((n, 4, 4), dtype=np.uint8),
        labels=np.zeros(n, dtype=np.int64),
        class_names=["normal"],
        meta={
            "anomalous": rng.random(n) < 0.3,
            "sex": rng.choice(["M", "F"], n),
            "age": rng.choice([20.0, 45.0, 70.0], n),
            "patient": np.array([f"patient{p:05d}" for p in patients]),
        },
    )
    cfg = {"loader": "chexpert", "split": {"val_size": 16, "test_size": 16}, "candidates": 10}
    split = xray_split(data, 0, cfg, seed=0, dataset_key="chexpert")
    held_out = set(data.meta["patient"][np.concatenate([split.val_ids, split.test_ids])])
    train_patients = set(data.meta["patient"][split.train])
    assert train_patients and not train_patients & held_out
    # every normal image of a patient outside val/test still trains
    normal_free = [i for i in range(n) if not data.meta["anomalous"][i] and data.meta["patient"][i] not in held_out]
    assert sorted(split.train.tolist()) == normal_free


def test_brats_volume_is_equalised_as_a_whole_after_resizing():
    dark = np.linspace(1, 10, 240 * 240).reshape(240, 240)
    bright = dark + 100
    volume = np.stack([dark, bright], axis=2)
    out = brats_volume(volume, 128)
    assert out.shape == (128, 128, 2) and out.dtype == np.uint8
    # one histogram for the volume: the dark slice stays dark, the bright one bright
    assert out[:, :, 0].max() <= 130 and out[:, :, 1].min() >= 125 and out[:, :, 1].max() == 255


def test_brats_slices_with_up_to_16_lesion_pixels_are_healthy(tmp_path: Path):
    nib = pytest.importorskip("nibabel")
    yy, xx = np.mgrid[:64, :64]
    brain = ((yy - 32) ** 2 + (xx - 32) ** 2 < 28**2).astype(np.float32)
    t2 = np.repeat((brain * (100 + xx))[:, :, None], 5, axis=2)
    seg = np.zeros(t2.shape, dtype=np.uint8)
    seg[30:34, 30:34, 1] = 1  # 16 pixels: healthy (the reference: more than 16)
    seg[30:35, 30:34, 3] = 2  # 20 pixels: glioma
    folder = tmp_path / "BraTS20_Training_001"
    folder.mkdir()
    nib.save(nib.Nifti1Image(t2, np.eye(4)), str(folder / "BraTS20_Training_001_t2.nii.gz"))
    nib.save(nib.Nifti1Image(seg, np.eye(4)), str(folder / "BraTS20_Training_001_seg.nii.gz"))
    data = load_dataset({"loader": "brats", "root": str(tmp_path), "image_size": 32})
    assert data.meta["anomalous"].tolist() == [False, False, False, True, False]

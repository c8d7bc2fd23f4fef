"""Fixtures of the dataset tests (the real images the builders start from)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def textures() -> dict[str, np.ndarray]:
    import skimage.data

    return {name: getattr(skimage.data, name)() for name in ("brick", "grass", "gravel")}


TEMPLATE = Path("/usr/share/mricron/templates/ch2bet.nii.gz")


@pytest.fixture(scope="module")
def brain() -> tuple[np.ndarray, np.ndarray]:
    """A real skull-stripped T1 brain (mricron-data), reduced; a synthetic head when it is missing."""
    import nibabel as nib

    if TEMPLATE.is_file():
        img = nib.load(str(TEMPLATE))
        volume = np.asanyarray(img.dataobj)[::3, ::3, :].astype(np.float32)
        affine = img.affine @ np.diag([3.0, 3.0, 1.0, 1.0])
    else:  # an ellipsoid "brain" with some texture
        xx, yy, zz = np.mgrid[:61, :73, :60]
        inside = ((xx - 30) / 25.0) ** 2 + ((yy - 36) / 30.0) ** 2 + ((zz - 30) / 25.0) ** 2 < 1
        volume = np.where(inside, 100 + 50 * np.cos(xx / 3.0) * np.sin(yy / 4.0), 0).astype(np.float32)
        affine = np.diag([3.0, 3.0, 1.0, 1.0])
    c = volume.shape[2] // 2
    return volume[:, :, c - 8 : c + 9], affine  # 17 axial slices, the centre one at index 8

"""scikit-learn's bundled ``digits``: 1797 real scanned 8x8 digits, the offline default."""

from __future__ import annotations

from typing import Any

import numpy as np

from protolib.data.base import ImageDataset, register_dataset


@register_dataset("digits", [str(d) for d in range(10)], reads=(), files=False)
def load_digits(cfg: dict[str, Any]) -> ImageDataset:
    # here: scikit-learn only when the digits dataset is read
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    # 17 grey levels (0..16) mapped onto the full uint8 range.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return ImageDataset(
        name="digits",
        images=images,
        labels=bunch.target.astype(np.int64),
        class_names=[str(c) for c in bunch.target_names],
    )

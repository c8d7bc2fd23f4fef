"""The detector interface every model implements, and the detector registry.

A detector is fitted on normal images only and scores images (higher = more anomalous).
``score_matrix`` is the per-sample quantity of the paper: row i holds the scores of every val
image under a detector fitted on training image i alone. The default computes it by definition
(one fit per image); detectors with a closed form override it and are tested equal.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from protolib.registry import Registry


class Detector(ABC):
    name: str = "detector"

    @abstractmethod
    def fit(self, images: np.ndarray) -> "Detector":
        """Fit on normal images only."""

    @abstractmethod
    def score(self, images: np.ndarray) -> np.ndarray:
        """Anomaly score per image, higher = more anomalous, shape (N,)."""

    def score_matrix(self, train_images: np.ndarray, val_images: np.ndarray) -> np.ndarray:
        """(K, |val|): scores of val images under a detector fitted on each training image alone."""
        rows = []
        for i in tqdm(range(len(train_images)), desc=f"{self.name}: single-sample fits", leave=False):
            single = copy.deepcopy(self).fit(train_images[i : i + 1])
            rows.append(single.score(val_images))
        return np.stack(rows).astype(np.float64)


class FrozenFeatureDetector(Detector):
    """A detector that works on features of a frozen backbone.

    The pipeline computes those features once per dataset and backbone (a cached file) and calls
    the ``*_features`` methods; ``fit``/``score`` on images embed first, so both routes agree.
    """

    def __init__(self, backbone: Any) -> None:
        self.backbone = backbone

    def embed(self, images: np.ndarray) -> np.ndarray:
        return self.backbone(images)

    def fit(self, images: np.ndarray) -> "FrozenFeatureDetector":
        return self.fit_features(self.embed(images))

    def score(self, images: np.ndarray) -> np.ndarray:
        return self.score_features(self.embed(images))

    def score_matrix(self, train_images: np.ndarray, val_images: np.ndarray) -> np.ndarray:
        return self.score_matrix_features(self.embed(train_images), self.embed(val_images))

    @abstractmethod
    def fit_features(self, features: np.ndarray) -> "FrozenFeatureDetector": ...

    @abstractmethod
    def score_features(self, features: np.ndarray) -> np.ndarray: ...

    def score_matrix_features(self, train_features: np.ndarray, val_features: np.ndarray) -> np.ndarray:
        """By definition: one detector per training feature. Subclasses give closed forms."""
        rows = [
            copy.copy(self).fit_features(train_features[i : i + 1]).score_features(val_features)
            for i in range(len(train_features))
        ]
        return np.stack(rows).astype(np.float64)


DetectorFactory = Callable[..., Detector]
DETECTORS: Registry[DetectorFactory] = Registry("detector")


def make_detector(model_cfg: dict[str, Any], device: str = "auto") -> Detector:
    """Build the detector a ``models.<name>`` config block describes."""
    return DETECTORS.get(model_cfg["detector"])(model_cfg, device=device)


def detector_uses_features(model_cfg: dict[str, Any]) -> bool:
    """Whether a model's detector works on the cached frozen features (known without building it)."""
    return bool(getattr(DETECTORS.get(model_cfg["detector"]), "frozen_features", False))

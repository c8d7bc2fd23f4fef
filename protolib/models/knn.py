"""``knn``: the single-sample / DN2 form of PANDA.

Frozen features; score = sum of squared L2 distances to the k nearest training features (k=2 in
the paper, fewer when fewer training images exist). With one training image the score is the
squared distance to it, so the whole per-sample matrix is one distance matrix.

Reference: PANDA's ``utils.py`` knn_score (faiss IndexFlatL2, k = 2) on frozen features, as
the paper's DN2 / single-sample PANDA; no deviation. Pixel features are the raw values 0..255
(exact integer distances: ties stay ties).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protolib.models.backbones import make_backbone, resolve_device
from protolib.models.base import DETECTORS, FrozenFeatureDetector
from protolib.models.neighbours import knn_score, squared_distances


class KNNDetector(FrozenFeatureDetector):
    name = "knn"

    def __init__(self, backbone: Any, k: int = 2, device: str = "cpu") -> None:
        super().__init__(backbone)
        self.k = k
        self.device = device
        self.bank: np.ndarray | None = None

    def fit_features(self, features: np.ndarray) -> "KNNDetector":
        if len(features) == 0:
            raise ValueError("knn: cannot fit on zero training images")
        self.bank = np.asarray(features, dtype=np.float64)
        return self

    def score_features(self, features: np.ndarray) -> np.ndarray:
        if self.bank is None:
            raise RuntimeError("knn: score called before fit")
        return knn_score(self.bank, features, self.k, device=self.device)

    def score_matrix_features(self, train_features: np.ndarray, val_features: np.ndarray) -> np.ndarray:
        # A single-image bank has k_eff = 1: the score is the squared distance itself.
        return squared_distances(train_features, val_features, device=self.device)


@DETECTORS.register("knn")
def make_knn(model_cfg: dict[str, Any], device: str = "auto") -> KNNDetector:
    device = resolve_device(device)
    return KNNDetector(make_backbone(model_cfg, device=device), k=model_cfg.get("k", 2), device=device)


make_knn.frozen_features = True  # type: ignore[attr-defined]

"""``knn``: the single-sample / DN2 form of PANDA.

Frozen features; score = sum of squared L2 distances to the k nearest training features (k=2 in
the paper, fewer when fewer training images exist). With one training image the score is the
squared distance to it, so the whole per-sample matrix is one distance matrix.

Reference: PANDA's ``utils.py`` knn_score (faiss IndexFlatL2, k = 2) on frozen features, as
the paper's DN2 / single-sample PANDA; no deviation. Pixel features are the raw values 0..255
(exact integer distances: ties stay ties).
"""

from __future__ import annotations

import numpy as np

from protolib.models.backbones import FEATURE_DEFAULTS, make_backbone, resolve_device
from protolib.models.base import DETECTORS, FrozenFeatureDetector
from protolib.models.neighbours import Queries, knn_score, squared_distances


@DETECTORS.register("knn")
class KNNDetector(FrozenFeatureDetector):
    """kNN on the frozen features of ``backbone`` (the feature cache's, so its defaults are the
    cache's: ``protolib.models.backbones.FEATURE_DEFAULTS``)."""

    name = "knn"

    def __init__(
        self,
        *,
        k: int = 2,
        backbone: str = FEATURE_DEFAULTS["backbone"],
        weights: str = FEATURE_DEFAULTS["weights"],
        image_size: int = FEATURE_DEFAULTS["image_size"],
        batch_size: int = FEATURE_DEFAULTS["batch_size"],
        precision: str = FEATURE_DEFAULTS["precision"],
        device: str = "auto",
    ) -> None:
        self.k = k
        self.backbone, self.weights, self.image_size, self.batch_size = backbone, weights, image_size, batch_size
        self.precision = precision
        self.device = resolve_device(device)
        cache = {
            "backbone": backbone,
            "weights": weights,
            "image_size": image_size,
            "batch_size": batch_size,
            "precision": precision,
        }
        super().__init__(make_backbone(cache, device=self.device))
        self.bank: np.ndarray | None = None

    def fit_features(self, features: np.ndarray) -> KNNDetector:
        if len(features) == 0:
            raise ValueError("knn: cannot fit on zero training images")
        self.bank = np.asarray(features, dtype=np.float64)
        return self

    def score_features(self, features: np.ndarray | Queries) -> np.ndarray:
        if self.bank is None:
            raise RuntimeError("knn: score called before fit")
        return knn_score(self.bank, features, self.k, device=self.device)

    def prepared_features(self, features: np.ndarray) -> Queries:
        return Queries(features)

    def score_matrix_features(self, train_features: np.ndarray, val_features: np.ndarray) -> np.ndarray:
        # A single-image bank has k_eff = 1: the score is the squared distance itself.
        return squared_distances(train_features, val_features, device=self.device)

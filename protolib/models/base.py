"""The detector interface every model implements, and the detector registry.

A detector is fitted on normal images only and scores images (higher = more anomalous).
``score_matrix`` is the per-sample quantity of the paper: row i holds the scores of every val
image under a detector fitted on training image i alone. The default computes it by definition
(one fit per image); detectors with a closed form override it and are tested equal.

A detector class is its own registry entry: ``@DETECTORS.register("name")`` on a class whose
constructor takes its hyper-parameters as keywords with their defaults (``protolib.hyperparams``),
plus ``device`` if it uses one. ``models.<name>`` gives ``detector`` and the keywords to change.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from protolib.hyperparams import build, hyper_parameters, settings_problems
from protolib.models.backbones import FEATURE_DEFAULTS, backbone_names, network_backbones
from protolib.registry import Registry


class Detector(ABC):
    name: str = "detector"
    #: whether the pipeline gives it the cached frozen features (``*_features`` methods)
    frozen_features: bool = False
    #: whether it reads a ResNet's layers, so that its ``backbone`` must be one (not pixels)
    network_backbone: bool = False
    #: the single-sample fits' bar: True always, False never, None only on a terminal (``rank -q``: False)
    progress: bool | None = True

    @abstractmethod
    def fit(self, images: np.ndarray) -> Detector:
        """Fit on normal images only."""

    @abstractmethod
    def score(self, images: np.ndarray) -> np.ndarray:
        """Anomaly score per image, higher = more anomalous, shape (N,)."""

    def score_matrix(self, train_images: np.ndarray, val_images: np.ndarray) -> np.ndarray:
        """(K, |val|): scores of val images under a detector fitted on each training image alone."""
        from tqdm.auto import tqdm  # here, not at import: every job imports this module (0.07 s)

        rows = []
        disable = None if self.progress is None else not self.progress
        for i in tqdm(range(len(train_images)), desc=f"{self.name}: single-sample fits", leave=False, disable=disable):
            single = copy.deepcopy(self).fit(train_images[i : i + 1])
            rows.append(single.score(val_images))
        return np.stack(rows).astype(np.float64)

    def prepared_images(self, images: np.ndarray) -> Any:
        """What ``score`` takes for images scored again and again (one test set under every subset):
        by default the images; an image detector decodes and resizes them once
        (:class:`~protolib.models.feature_maps.PreparedImages`)."""
        return images

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters it was built with (scikit-learn's convention: each is kept as the
        attribute of its own name), e.g. to save it and build it again."""
        return {name: getattr(self, name) for name in hyper_parameters(type(self))}

    @classmethod
    def from_saved(cls, params: dict[str, Any], device: str = "auto") -> Detector:
        """An unfitted detector built from saved ``params`` without loading pretrained weights
        (the saved state replaces them); keys it does not take are dropped (files saved before
        keyword hyper-parameters held the whole model block)."""
        taken = hyper_parameters(cls)
        det = build(
            cls,
            {k: v for k, v in params.items() if k in taken and k != "weights"},
            {"weights": "none", "device": device},
        )
        if "weights" in taken:
            det.weights = params.get("weights", "none")  # what it was trained from, for a later save
        return det


class FrozenFeatureDetector(Detector):
    """A detector that works on features of a frozen backbone.

    The pipeline computes those features once per dataset and backbone (a cached file) and calls
    the ``*_features`` methods; ``fit``/``score`` on images embed first, so both routes agree.
    """

    frozen_features = True

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder

    def embed(self, images: np.ndarray) -> np.ndarray:
        return self.embedder(images)

    def fit(self, images: np.ndarray) -> FrozenFeatureDetector:
        return self.fit_features(self.embed(images))

    def score(self, images: np.ndarray) -> np.ndarray:
        return self.score_features(self.embed(images))

    def score_matrix(self, train_images: np.ndarray, val_images: np.ndarray) -> np.ndarray:
        return self.score_matrix_features(self.embed(train_images), self.embed(val_images))

    @abstractmethod
    def fit_features(self, features: np.ndarray) -> FrozenFeatureDetector: ...

    @abstractmethod
    def score_features(self, features: np.ndarray) -> np.ndarray: ...

    def prepared_features(self, features: np.ndarray) -> Any:
        """What ``score_features`` takes for features scored again and again (one test set under
        every subset): by default the features; a detector may work out once what each call
        would repeat (the kNN detector: :class:`~protolib.models.neighbours.Queries`)."""
        return features

    def score_matrix_features(self, train_features: np.ndarray, val_features: np.ndarray) -> np.ndarray:
        """By definition: one detector per training feature. Subclasses give closed forms."""
        rows = [
            copy.copy(self).fit_features(train_features[i : i + 1]).score_features(val_features)
            for i in range(len(train_features))
        ]
        return np.stack(rows).astype(np.float64)


DetectorFactory = Callable[..., Detector]
DETECTORS: Registry[DetectorFactory] = Registry("detector")


def _split_block(model_cfg: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ``models.<name>`` block's hyper-parameters, and its feature-cache keys (``backbone``,
    ``weights``, ``image_size``, ``batch_size``: read by the pipeline for every model, passed on
    to a detector whose constructor takes them)."""
    settings = {k: v for k, v in model_cfg.items() if k != "detector" and k not in FEATURE_DEFAULTS}
    return settings, {k: v for k, v in model_cfg.items() if k in FEATURE_DEFAULTS}


def make_detector(model_cfg: dict[str, Any], device: str = "auto") -> Detector:
    """Build the detector a ``models.<name>`` config block describes."""
    settings, feature_keys = _split_block(model_cfg)
    detector = model_cfg["detector"]
    return build(
        DETECTORS.get(detector),
        settings,
        {**feature_keys, "device": device},
        key="model",
        what=f"detector {detector!r}",
    )


def model_problems(name: str, model_cfg: dict[str, Any]) -> list[str]:
    """The keys of ``models.<name>`` its (registered) detector does not take, each named."""
    detector = model_cfg["detector"]
    factory = DETECTORS.get(detector)
    settings, _ = _split_block(model_cfg)
    problems = settings_problems(f"models.{name}", f"detector {detector!r}", factory, settings, FEATURE_DEFAULTS)
    own = hyper_parameters(factory).get("backbone", FEATURE_DEFAULTS["backbone"])
    if "backbone" not in model_cfg and own != FEATURE_DEFAULTS["backbone"]:
        problems.append(
            f"models.{name}.backbone: missing; detector {detector!r} would use {own!r} and the "
            f"feature cache (gmm, typical) {FEATURE_DEFAULTS['backbone']!r}: name it"
        )
    backbone = model_cfg.get("backbone")
    layers = getattr(factory, "network_backbone", False)
    if layers and backbone in backbone_names() and backbone not in network_backbones():
        problems.append(
            f"models.{name}.backbone: detector {detector!r} works on a ResNet's layers and {backbone!r} has none; "
            f"allowed: {', '.join(network_backbones())}"
        )
    return problems


def detector_uses_features(model_cfg: dict[str, Any]) -> bool:
    """Whether a model's detector works on the cached frozen features (known without building it)."""
    return bool(getattr(DETECTORS.get(model_cfg["detector"]), "frozen_features", False))

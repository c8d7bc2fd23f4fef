"""Detectors (by registered name) and the frozen backbones that embed images for them."""

from protolib.models import knn as _knn  # noqa: F401  (registers "knn")
from protolib.models.backbones import BACKBONES, backbone_names, make_backbone
from protolib.models.base import DETECTORS, Detector, FrozenFeatureDetector, make_detector

# The trained detectors import torch at module level: loaded when a config first names them.
for _name in ("panda", "patchcore", "fae", "rd"):
    DETECTORS.register_lazy(_name, f"protolib.models.{_name}")

__all__ = [
    "BACKBONES",
    "DETECTORS",
    "Detector",
    "FrozenFeatureDetector",
    "backbone_names",
    "make_backbone",
    "make_detector",
]

"""A toy detector and a toy selector registered from outside protolib, as README "Extending"
describes: one module, named by the study config's ``plugins`` key. Used by test_extending.py."""

from __future__ import annotations

from typing import Any

import numpy as np

from protolib.models import DETECTORS, Detector
from protolib.selection import SELECTORS, Selection, SelectionContext, Selector


class MeanImageDetector(Detector):
    """Anomaly score: squared distance to the mean training image."""

    name = "toy_mean"

    def fit(self, images: np.ndarray) -> MeanImageDetector:
        self.mean_ = images.reshape(len(images), -1).astype(np.float64).mean(0)
        return self

    def score(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float64)
        return ((x - self.mean_) ** 2).sum(1)


@DETECTORS.register("toy_mean")
def make_toy_mean(model_cfg: dict[str, Any], device: str = "auto") -> MeanImageDetector:
    return MeanImageDetector()


class FirstCandidates(Selector):
    """The first M candidates in the split's order: a selector that uses no information."""

    name = "toy_first"

    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection:
        self._check_size(context, M)
        return Selection(ids=[int(i) for i in context.candidates[:M]], info={"rule": "the first M candidates"})


@SELECTORS.register("toy_first")
def make_toy_first(settings: dict[str, Any]) -> FirstCandidates:
    return FirstCandidates()

"""A toy detector and a toy selector registered from outside protolib, as docs/extending.md
describes: one module, named by the study config's ``plugins`` key. Used by test_extending.py.
Each class is its own registry entry; its constructor's keywords are its settings."""

from __future__ import annotations

import numpy as np

from protolib.models import DETECTORS, Detector
from protolib.selection import SELECTORS, Selection, SelectionContext, Selector


@DETECTORS.register("toy_mean")
class MeanImageDetector(Detector):
    """Anomaly score: distance to the mean training image, to the power ``power``."""

    name = "toy_mean"

    def __init__(self, *, power: float = 2.0) -> None:
        self.power = power

    def fit(self, images: np.ndarray) -> MeanImageDetector:
        self.mean_ = images.reshape(len(images), -1).astype(np.float64).mean(0)
        return self

    def score(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float64)
        return ((x - self.mean_) ** 2).sum(1) ** (self.power / 2)


@SELECTORS.register("toy_first")
class FirstCandidates(Selector):
    """The M candidates after the first ``skip``, in the split's order: a selector that uses no
    information."""

    name = "toy_first"

    def __init__(self, *, skip: int = 0) -> None:
        self.skip = skip

    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection:
        self._check_size(context, M + self.skip)
        ids = context.candidates[self.skip : self.skip + M]
        return Selection(ids=[int(i) for i in ids], info={"rule": f"the candidates {self.skip}..{self.skip + M - 1}"})

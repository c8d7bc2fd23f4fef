"""What a typicality pass finds (exact or linear-memory): its own module, so that both passes
(:mod:`protolib.selection.typicality`, :mod:`protolib.selection.typicality_scaled`) build it
without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Typicality:
    """What the typicality pass finds, indexed like the features it was given."""

    knn: np.ndarray  # mean squared distance to the nearest neighbours (small = typical)
    core: list[int]  # the M prototypes, in the order chosen
    typical: np.ndarray  # bool: in the typical core the prototypes cover (not in the tail)
    core_dist: np.ndarray  # squared distance to the nearest prototype (0 for the prototypes)
    nearest_core: np.ndarray  # index of that prototype

    def knn_rank(self) -> np.ndarray:
        # here: scipy (~1 s) only when ranks are asked for
        from scipy.stats import rankdata

        return rankdata(self.knn, method="average")

    def core_rank(self) -> np.ndarray:
        # here: scipy (~1 s) only when ranks are asked for
        from scipy.stats import rankdata

        return rankdata(self.core_dist, method="average")

    def rank(self, names: list[str] | None = None) -> np.ndarray:
        """1 = most prototypical: by the mean of the typicality and core-distance ranks (ties:
        smaller kNN distance, then ``names``)."""
        n = len(self.knn)
        keys = [
            np.array(names) if names is not None else np.arange(n),
            self.knn,
            (self.knn_rank() + self.core_rank()) / 2.0,
        ]
        rank = np.empty(n, dtype=np.int64)
        rank[np.lexsort(keys)] = np.arange(1, n + 1)
        return rank


def typical_rows(knn: np.ndarray, exclude: int) -> tuple[np.ndarray, np.ndarray]:
    """The typical core a cover covers: all but the ``exclude`` largest kNN distances (ties kept
    in file order), as a mask and as row indices."""
    typical = np.ones(len(knn), dtype=bool)
    typical[np.argsort(-knn, kind="stable")[:exclude]] = False
    return typical, np.flatnonzero(typical)

"""Subset selectors (by registered name): greedy, evolutionary, gmm, typical, random, manual."""

from protolib.selection import greedy as _greedy  # noqa: F401
from protolib.selection import manual as _manual  # noqa: F401
from protolib.selection import random as _random  # noqa: F401
from protolib.selection.base import (
    SELECTORS,
    Selection,
    SelectionContext,
    Selector,
    make_selector,
)

# imported on first use: numba (evolutionary) and scikit-learn / torch (gmm, typical) cost
# seconds of start-up to every job that never runs them
SELECTORS.register_lazy("evolutionary", "protolib.selection.evolutionary")
SELECTORS.register_lazy("gmm", "protolib.selection.gmm")
SELECTORS.register_lazy("typical", "protolib.selection.typicality")

__all__ = ["SELECTORS", "Selection", "SelectionContext", "Selector", "make_selector"]

"""Subset selectors (by registered name): greedy, evolutionary, gmm, typical, random, manual."""

from protolib.selection.base import SELECTORS, Selection, SelectionContext, Selector, make_selector
from protolib.selection import greedy as _greedy  # noqa: F401
from protolib.selection import evolutionary as _evolutionary  # noqa: F401
from protolib.selection import gmm as _gmm  # noqa: F401
from protolib.selection import typicality as _typicality  # noqa: F401
from protolib.selection import random as _random  # noqa: F401
from protolib.selection import manual as _manual  # noqa: F401

__all__ = ["SELECTORS", "Selection", "SelectionContext", "Selector", "make_selector"]

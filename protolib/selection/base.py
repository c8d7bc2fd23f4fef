"""The selector interface: ``select(context, M, rng) -> Selection``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protolib.registry import Registry


@dataclass
class SelectionContext:
    """What a selector may use. Ids are global dataset ids; rows of the matrix follow ``candidates``."""

    candidates: np.ndarray
    score_matrix: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    sample_auroc: np.ndarray | None = None
    pool_ids: np.ndarray | None = None
    pool_features: np.ndarray | None = None
    manual_ids: list[int] | None = None
    train_ids: np.ndarray | None = None


@dataclass
class Selection:
    ids: list[int]
    fitness: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


class Selector(ABC):
    name: str = "selector"
    #: how many seeded repeats the study runs (random: config's ``repeats``; others: 1)
    def repeats(self) -> int:
        return 1

    @abstractmethod
    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection: ...

    @staticmethod
    def _check_size(context: SelectionContext, M: int, pool: int | None = None) -> None:
        pool = len(context.candidates) if pool is None else pool
        if M > pool:
            raise ValueError(f"M = {M} is larger than the {pool} samples to choose from")


SelectorFactory = Callable[[dict[str, Any]], Selector]
SELECTORS: Registry[SelectorFactory] = Registry("selection method")


def make_selector(name: str, selection_cfg: dict[str, Any] | None = None) -> Selector:
    """Build a selector from the ``selection`` config block (its own sub-block holds settings)."""
    settings = (selection_cfg or {}).get(name, {})
    return SELECTORS.get(name)(settings)

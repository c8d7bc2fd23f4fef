"""Random M-subsets of the candidates: the baseline, repeated over seeds."""

from __future__ import annotations

import numpy as np

from protolib.selection.base import SELECTORS, Selection, SelectionContext, Selector


@SELECTORS.register("random")
class RandomSelector(Selector):
    name = "random"

    def __init__(self, *, repeats: int = 10) -> None:
        """``repeats``: random subsets per M (one output file each)."""
        self._repeats = repeats

    def repeats(self) -> int:
        return self._repeats

    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection:
        self._check_size(context, M)
        picked = rng.choice(len(context.candidates), size=M, replace=False)
        return Selection(ids=[int(i) for i in context.candidates[np.sort(picked)]])

"""Greedy: the M candidates with the best single-sample val AUROC (paper Eq. 2)."""

from __future__ import annotations

import numpy as np

from protolib.selection.base import SELECTORS, Selection, SelectionContext, Selector


@SELECTORS.register("greedy")
class GreedySelector(Selector):
    name = "greedy"

    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection:
        self._check_size(context, M)
        if context.sample_auroc is None:
            raise ValueError("greedy needs the per-sample val AUROC")
        order = np.argsort(-np.asarray(context.sample_auroc), kind="stable")[:M]
        return Selection(
            ids=[int(i) for i in context.candidates[order]],
            fitness=float(np.mean(context.sample_auroc[order])),
            info={"fitness": "mean single-sample val AUROC"},
        )

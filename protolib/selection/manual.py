"""Manual: the user's own list of training ids (the paper's manual-selection experiment).

Subset size M takes the first M ids of the list, so the list is read as a ranking.
"""

from __future__ import annotations

import numpy as np

from protolib.selection.base import SELECTORS, Selection, SelectionContext, Selector


@SELECTORS.register("manual")
class ManualSelector(Selector):
    name = "manual"

    def select(self, context: SelectionContext, M: int, rng: np.random.Generator) -> Selection:
        ids = list(context.manual_ids or [])
        if len(ids) < M:
            raise ValueError(f"manual selection lists {len(ids)} ids, fewer than M = {M}")
        if len(set(ids[:M])) != M:
            raise ValueError(f"manual selection: the first {M} ids contain duplicates: {ids[:M]}")
        pool = context.train_ids if context.train_ids is not None else context.candidates
        unknown = sorted(set(ids[:M]) - {int(i) for i in pool})
        if unknown:
            raise ValueError(f"manual selection: ids {unknown} are not training images of this class")
        return Selection(ids=[int(i) for i in ids[:M]])

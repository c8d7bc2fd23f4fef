"""With labelled val folders: the paper's single-sample scores, the greedy and evolutionary
subsets (the selector registry's), and the val AUROC of the detector fitted on each subset.

Fitting and scoring go through the pipeline's one route (:mod:`protolib.scoring`): a
frozen-feature detector is fed the features embedded once, any other the images. The greedy
and evolutionary subsets are chosen on this same val set, so their val AUROC is optimistic.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from protolib.checks import check_finite
from protolib.metrics import auroc, rowwise_auroc
from protolib.rank.folders import ImageFolder
from protolib.rank.options import RankError, RankOptions
from protolib.rank.ranking import Ranking
from protolib.scoring import Inputs, fit_and_score_across, single_sample_scores
from protolib.selection import SelectionContext, make_selector

METHODS = ("greedy", "evolutionary")


@dataclass
class Validation:
    subsets: dict[str, list[int]]  # greedy / evolutionary -> image ids
    info: dict[str, dict[str, Any]]  # method -> fitness and the selector's info
    val_auroc: dict[str, float]  # greedy, evolutionary, typical, all -> val AUROC
    settings: dict[str, Any]  # the val folders and counts, for the outputs' settings


def validate(
    detector: Any,
    frozen: bool,
    embed: Callable[[np.ndarray], np.ndarray],
    read: list[ImageFolder],
    features: np.ndarray,
    ranking: Ranking,
    opts: RankOptions,
    log: Callable[[str], None],
) -> Validation:
    """Scores, subsets and val AUROCs; adds ``val_auroc`` and one column per method to the table."""
    train, val_normal, val_anomalous = read
    n = len(train)
    val_images = np.concatenate([val_normal.images, val_anomalous.images])
    val_labels = np.r_[np.zeros(len(val_normal), int), np.ones(len(val_anomalous), int)]
    train_in = Inputs(images=train.images, features=features if frozen else None)
    val_in = Inputs(images=val_images, features=np.asarray(embed(val_images)) if frozen else None)
    val_ids = np.arange(len(val_labels))
    cand = np.arange(n)
    if opts.candidates is not None and opts.candidates < n:
        cand = np.sort(np.random.default_rng([opts.seed, 1]).choice(n, size=opts.candidates, replace=False))
    log(f"single-sample scores: {len(cand)} images x {len(val_labels)} val images")
    detector.progress = opts.progress  # the single-sample fits' bar of a detector without frozen features
    matrix = np.asarray(single_sample_scores(detector, train_in, cand, val_in, val_ids), dtype=np.float64)
    check_finite(matrix, "single-sample scores")
    subsets, info = _select(matrix, cand, val_labels, features, ranking, opts, log)
    evaluate = {**subsets, "typical": list(ranking.core_ids), "all": list(range(n))}
    val_auroc = {}
    for method, ids in tqdm(
        evaluate.items(), desc="val AUROC per subset", disable=_disabled(opts.progress), leave=False
    ):
        fitted = copy.copy(detector) if frozen else copy.deepcopy(detector)  # the detector itself stays unfitted
        val_auroc[method] = auroc(val_labels, fit_and_score_across(fitted, train_in, ids, val_in, val_ids))
    settings = {
        "val_normal": str(opts.val_normal),
        "val_anomalous": str(opts.val_anomalous),
        "n_val_normal": len(val_normal),
        "n_val_anomalous": len(val_anomalous),
        "population": opts.population,
        "generations": opts.generations,
        "n_candidates": len(cand),
    }
    return Validation(subsets=subsets, info=info, val_auroc=val_auroc, settings=settings)


def _select(
    matrix: np.ndarray,
    cand: np.ndarray,
    val_labels: np.ndarray,
    features: np.ndarray,
    ranking: Ranking,
    opts: RankOptions,
    log: Callable[[str], None],
) -> tuple[dict[str, list[int]], dict[str, dict[str, Any]]]:
    """The greedy and evolutionary M-subsets (selectors from the registry), marked in the table."""

    table, n = ranking.table, len(ranking.table)
    sample_auroc = rowwise_auroc(matrix, val_labels)
    column = np.full(n, np.nan)
    column[cand] = sample_auroc
    table["val_auroc"] = column
    context = SelectionContext(
        candidates=cand,
        score_matrix=matrix,
        val_labels=val_labels,
        sample_auroc=sample_auroc,
        pool_ids=np.arange(n),
        pool_features=features,
    )
    sel_cfg = {"evolutionary": {"population": opts.population, "generations": opts.generations, "fitness": "paper"}}
    subsets, info = {}, {}
    for i, method in enumerate(METHODS):
        log(f"{method} selection, M = {opts.M}")
        selector = make_selector(method, sel_cfg)
        if hasattr(selector, "progress"):  # evolutionary's generations bar
            selector.progress = opts.progress
        try:
            result = selector.select(context, opts.M, np.random.default_rng([opts.seed, 2 + i]))
        except ValueError as err:
            raise RankError(f"{method} selection: {err}") from err
        subsets[method] = [int(j) for j in result.ids]
        info[method] = {"fitness": result.fitness, **result.info}
        table[method] = np.isin(np.arange(n), subsets[method])
    return subsets, info


def _disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None (progress None) shows bars only on a terminal."""
    return None if progress is None else not progress

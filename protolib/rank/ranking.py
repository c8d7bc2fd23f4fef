"""The label-free ranking of one folder: embed every image once, then the ``typical`` selector's
typicality (:mod:`protolib.selection.typicality`): kNN distance, core-set, and their mean rank."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from protolib.checks import check_finite
from protolib.rank.folders import ImageFolder
from protolib.rank.model import pca
from protolib.rank.options import RankOptions


@dataclass
class Ranking:
    """The typicality of every image of the folder, in file order."""

    table: pd.DataFrame  # one row per image, in file order (val columns are added later)
    core_ids: Any  # the M prototypes, in component order
    atypical_ids: list[int]  # most atypical first
    knn: np.ndarray  # mean squared distance to the k nearest other images
    core_dist: np.ndarray  # squared distance to the nearest prototype
    rank: np.ndarray  # 1 = most prototypical
    exclude: int  # images of largest kNN distance left out of the core-set's cover
    coreset_fitness: float  # summed squared distance of the covered images to their nearest prototype


def embed_folder(embed: Callable[[np.ndarray], np.ndarray], data: ImageFolder, backbone: str, size: int,
                 device: str, log: Callable[[str], None]) -> np.ndarray:
    """The frozen features of every image of the folder (checked finite)."""
    log(f"embedding {len(data)} images ({data.mode}, {size}x{size}) with {backbone} on {device}")
    features = np.asarray(embed(data.images))
    check_finite(features, "image features")
    return features


def rank_images(data: ImageFolder, features: np.ndarray, opts: RankOptions, n_atypical: int, device: str,
                log: Callable[[str], None]) -> Ranking:
    """Typicality, core-set and rank of every image; the ``n_atypical`` last ranks are listed."""
    from protolib.selection.typicality import typicality

    n, M = len(data), opts.M
    exclude = min(n_atypical, n // 10) if opts.coreset_exclude is None else opts.coreset_exclude
    exclude = min(exclude, n - M)
    log(f"choosing {M} prototypes covering the {n - exclude} most typical images")
    space = features if not opts.pca else pca(features, opts.pca, opts.seed)
    found = typicality(space, M, neighbours=opts.neighbours, exclude=exclude, device=device, progress=opts.progress)
    rank = found.rank(data.names)
    atypical_ids = [int(i) for i in np.argsort(rank)[::-1][:n_atypical]]
    names = data.names
    table = pd.DataFrame({
        "rank": rank,
        "file": names,
        "knn_sqdist": found.knn,
        "knn_rank": found.knn_rank(),
        "core_sqdist": found.core_dist,
        "core_rank": found.core_rank(),
        "nearest_core": [names[j] for j in found.nearest_core],
        "coreset": np.isin(np.arange(n), found.core),
        "coreset_fit": found.typical,
        "atypical": np.isin(np.arange(n), atypical_ids),
    })
    return Ranking(table=table, core_ids=found.core, atypical_ids=atypical_ids, knn=found.knn,
                   core_dist=found.core_dist, rank=rank, exclude=int(exclude),
                   coreset_fitness=float(found.core_dist[found.typical].sum()))

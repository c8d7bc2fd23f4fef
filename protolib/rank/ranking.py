"""The label-free ranking of one folder: embed every image once, then the ``typical`` selector's
typicality (:mod:`protolib.selection.typicality`): kNN distance, core-set, and their mean rank."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from protolib.checks import check_finite
from protolib.rank.folders import ImageFolder
from protolib.rank.model import pca, pca_components
from protolib.rank.options import RankOptions
from protolib.selection.typicality import make_pass


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
    notes: list[str] = field(default_factory=list)  # what summary.json says: capped options, ties, recall


def embed_folder(
    embed: Callable[[np.ndarray], np.ndarray],
    data: ImageFolder,
    backbone: str,
    size: int,
    device: str,
    log: Callable[[str], None],
    batch: int = 1024,
    progress: bool | None = None,
) -> np.ndarray:
    """The frozen features of every image of the folder (checked finite), ``batch`` images at a
    time into one float32 array (the embedding's float copy of the images is one batch's)."""

    log(f"embedding {len(data)} images ({data.mode}, {size}x{size}) with {backbone} on {device}")
    quiet_network(embed, progress)
    features: np.ndarray | None = None
    with tqdm(
        total=len(data), desc="embedding", unit="img", leave=False, disable=None if progress is None else not progress
    ) as bar:
        for start in range(0, len(data), batch):
            part = np.asarray(embed(data.images[start : start + batch]))
            if features is None:
                features = np.empty((len(data), *part.shape[1:]), dtype=np.result_type(part.dtype, np.float32))
            features[start : start + len(part)] = part
            bar.update(len(part))
    assert features is not None
    check_finite(features, "image features")
    return features


def quiet_network(embed: Callable[[np.ndarray], np.ndarray], progress: bool | None) -> None:
    """The network's own batch bar (:class:`~protolib.models.backbones.ResNetPooled`) follows
    ``progress`` too, for the folder and later the val images: ``embed`` is the backbone, or a
    frozen-feature detector's ``embed`` method, whose backbone is its ``embedder``."""
    backbone = getattr(getattr(embed, "__self__", None), "embedder", embed)
    if hasattr(backbone, "progress"):
        backbone.progress = progress


def rank_images(
    data: ImageFolder, features: np.ndarray, opts: RankOptions, n_atypical: int, device: str, log: Callable[[str], None]
) -> Ranking:
    """Typicality, core-set and rank of every image; the ``n_atypical`` last ranks are listed."""
    n, M = len(data), opts.M
    exclude = min(n_atypical, n // 10) if opts.coreset_exclude is None else opts.coreset_exclude
    exclude = min(exclude, n - M)
    space = features if not opts.pca else pca(features, opts.pca, opts.seed)

    found_pass = make_pass(space, opts.neighbours, device, opts.progress, opts.knn_index)
    exclude = separated(found_pass.knn, exclude)
    log(f"choosing {M} prototypes covering the {n - exclude} most typical images")
    found = found_pass.find(M, exclude)
    rank = found.rank(data.names)
    order = np.argsort(rank)[::-1]  # most atypical first
    score = (found.knn_rank() + found.core_rank()) / 2.0
    listed = separated_tail(order, [score, found.knn], n_atypical)
    atypical_ids = [int(i) for i in order[:listed]]
    notes = _capped(opts, n, features.shape) + _notes(found, found_pass, opts, n_atypical, listed)
    names = data.names
    table = pd.DataFrame(
        {
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
        }
    )
    return Ranking(
        table=table,
        core_ids=found.core,
        atypical_ids=atypical_ids,
        knn=found.knn,
        core_dist=found.core_dist,
        rank=rank,
        exclude=int(exclude),
        coreset_fitness=float(found.core_dist[found.typical].sum()),
        notes=notes,
    )


def _capped(opts: RankOptions, n: int, shape: tuple[int, ...]) -> list[str]:
    """The options the folder's size lowered (the settings record the values used): said, not
    applied silently."""
    notes = []
    if opts.pca and pca_components(opts.pca, shape) < opts.pca:
        notes.append(
            f"--pca {opts.pca} is more than min(images, feature dimensions) = {min(shape)}; "
            f"using {min(shape)} components"
        )
    if opts.coreset_exclude is not None and opts.coreset_exclude > n - opts.M:
        notes.append(
            f"--coreset-exclude {opts.coreset_exclude} leaves fewer than M = {opts.M} of the {n} images to "
            f"cover; leaving out {n - opts.M}"
        )
    if opts.neighbours > n - 1:
        notes.append(f"--neighbours {opts.neighbours} is more than the {n - 1} other images; using k = {n - 1}")
    return notes


def _notes(found: Any, found_pass: Any, opts: RankOptions, n_atypical: int, listed: int) -> list[str]:
    """What summary.json says of the run beside its numbers: an approximate kNN's recall, and
    last-ranked images that the distances do not separate from the rest."""
    n = len(found.knn)
    notes = []
    if getattr(found_pass, "recall", None) is not None:
        notes.append(
            f"kNN by faiss's IVF index (--knn-index ivf): recall of the exact {min(opts.neighbours, n - 1)} "
            f"nearest neighbours {found_pass.recall:.3f}, measured on up to 1000 images"
        )
    if listed < n_atypical:
        notes.append(
            f"{n_atypical - listed} of the {n_atypical} last-ranked images are not listed as atypical: their "
            "kNN and core-set distances equal those of images ranked above them, so the distances do not "
            "separate them from the rest"
            + (
                " (all images are equally typical)"
                if listed == 0 and np.ptp(found.knn) == 0 and np.ptp(found.core_dist) == 0
                else ""
            )
        )
    return notes


def separated(knn: np.ndarray, exclude: int) -> int:
    """How many of the ``exclude`` largest kNN distances are larger than every other image's:
    a group of equal distances across the cut is not left out of the cover (12 identical images:
    none)."""
    if exclude <= 0 or exclude >= len(knn):
        return max(exclude, 0)
    cut = np.sort(knn)[::-1][exclude]
    return int(min(exclude, (knn > cut).sum()))


def separated_tail(order: np.ndarray, keys: list[np.ndarray], count: int) -> int:
    """How many of the first ``count`` of ``order`` (most atypical first) differ in ``keys`` from
    every image after them: an image tied with one ranked above the cut is not called atypical.
    The most typical image is never listed: it is what the others are compared with."""
    count = min(count, len(order) - 1)
    if count <= 0:
        return 0
    after = order[count]
    listed = count
    while listed > 0 and all(key[order[listed - 1]] == key[after] for key in keys):
        listed -= 1
    return listed

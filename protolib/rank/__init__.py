"""``protolib rank``: rank the images of a folder from prototypical to long-tail, without labels.

A small package built from the pipeline's parts: ``options`` (every setting, checked first),
``folders`` (reading the folders with the pipeline's image reader), ``model`` (the detector and
its frozen embedding), ``ranking`` (typicality: the ``typical`` selector's), ``validation``
(single-sample scores through :mod:`protolib.scoring`, greedy and evolutionary from the selector
registry), ``outputs``, ``contact_sheet`` (the figures' grid drawer) and ``app`` (the steps in order).

Every image of a folder is embedded (the detector's frozen features, see below) and scored by
two label-free typicality measures:

* ``knn_sqdist``: the mean squared L2 distance to its k nearest other images in feature space
  (k = ``neighbours``, the image itself excluded; duplicates count as neighbours);
* ``core_sqdist``: the squared distance to the nearest member of the core-set (M prototypes
  covering the typical images, see below), 0 for the core-set members themselves.

``rank`` orders the images by the mean of the two ranks (ties: smaller kNN distance, then file
name); rank 1 is the most prototypical image, the last ranks are the long-tail candidates: rare
but valid images, or noisy, corrupted and mislabelled files (paper Sec. 5.2). The
``n_atypical`` last ones are listed separately, except those whose distances equal those of an
image ranked above the cut (12 identical images: none is atypical; ``summary.json``'s ``notes``
say so). Above 10 000 images kNN and core-set are computed in memory linear in n
(:mod:`protolib.selection.typicality_scaled`, ``docs/rank.md``).

The core-set is the ``typical`` selector's (``protolib.selection.typicality``, the one
implementation of this ranking): M prototypes covering all images but the ``coreset_exclude``
of largest kNN distance (default: the ``n_atypical`` most atypical, at most a tenth of the
images), so that no prototype is spent on an isolated outlier such as a pure-noise image.
With ``pca`` typicality and prototypes are computed on that many principal components.

Features: for a detector on frozen features (``knn``: the ``frozen_features`` flag of its
registry entry) its own embedding; for the others (``panda``, ``patchcore``, ``fae``) the
global-average-pooled features of the model's backbone (``make_backbone``), since their own
representations are trained or patch-wise.

With labelled validation folders (normal, anomalous) it also computes the paper's
single-sample scores (the detector fitted on each image alone scores every val image; for
``knn`` one exact distance matrix), the single-sample val AUROC of each image, the greedy and
evolutionary M-subsets, and the val AUROC of the detector fitted on each subset, on the
core-set and on all images. The greedy and evolutionary subsets are chosen on that same val
set, so their val AUROC is optimistic; measure them on held-out images.
"""

from protolib.rank.app import rank_folder
from protolib.rank.options import RankError, RankOptions
from protolib.rank.result import RankResult

__all__ = ["RankError", "RankOptions", "RankResult", "rank_folder"]

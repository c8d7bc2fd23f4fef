"""What a detector is fed, and the one route to fit it and score with it.

A detector on frozen features (:func:`protolib.models.base.detector_uses_features`, the flag of
its registry entry) is fed features: the pipeline's cached file, or what ``protolib rank``
embeds once; any other detector is fed images. The pipeline's stages and ``protolib rank`` call
the same two functions below, so they fit, score and build the single-sample matrix alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from protolib.data import ImageDataset
from protolib.integrity import read_features


@dataclass
class Inputs:
    """What a detector is fed: features for frozen-feature detectors, else images."""

    images: np.ndarray | None
    features: np.ndarray | None

    @classmethod
    def load(cls, data_path: str | Path | None, features_path: str | Path | None) -> Inputs:
        """The cached features (memory-mapped) if their path is given, else the prepared images;
        either checked against its digest (:mod:`protolib.integrity`)."""

        if features_path:
            return cls(images=None, features=read_features(features_path))
        if data_path is None:
            raise ValueError("a detector that works on images needs the prepared dataset file")
        return cls(images=ImageDataset.load(data_path).images, features=None)


def fit_and_score_across(detector: Any, train: Inputs, train_ids: Any, test: Inputs, test_ids: Any) -> np.ndarray:
    """Fit on ``train_ids`` of one set of inputs, score ``test_ids`` of another (or the same)."""
    return next(fit_and_score_each(detector, train, [train_ids], test, test_ids))


def fit_and_score(detector: Any, inputs: Inputs, train_ids: Any, test_ids: Any) -> np.ndarray:
    """Fit on ``train_ids`` and score ``test_ids`` of one dataset's inputs."""
    return fit_and_score_across(detector, inputs, train_ids, inputs, test_ids)


def fit_and_score_each(
    detector: Any, train: Inputs, train_id_lists: Iterable[Any], test: Inputs, test_ids: Any
) -> Iterator[np.ndarray]:
    """Fit on each training-id list in turn and score ``test_ids``: the test set is gathered and
    prepared once, not once per list (features: :meth:`prepared_features`; images decoded and
    resized: :meth:`prepared_images`)."""
    test_ids = np.asarray(test_ids, dtype=np.int64)
    if train.features is not None:
        queries = detector.prepared_features(np.asarray(test.features[test_ids]))
        for train_ids in train_id_lists:
            detector.fit_features(np.asarray(train.features[np.asarray(train_ids, dtype=np.int64)]))
            yield detector.score_features(queries)
        return
    images = detector.prepared_images(test.images[test_ids])
    for train_ids in train_id_lists:
        detector.fit(train.images[np.asarray(train_ids, dtype=np.int64)])
        yield detector.score(images)


def single_sample_scores(detector: Any, train: Inputs, rows: Any, val: Inputs, val_ids: Any) -> np.ndarray:
    """The (len(rows), len(val_ids)) matrix of the paper: row i scores every val input under the
    detector fitted on training input ``rows[i]`` alone (closed forms where the detector has one)."""
    if train.features is not None:
        return detector.score_matrix_features(np.asarray(train.features[rows]), np.asarray(val.features[val_ids]))
    return detector.score_matrix(train.images[rows], detector.prepared_images(val.images[val_ids]))

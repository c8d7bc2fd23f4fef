"""What a stage reads must agree with what it was derived from; checked where it is read.

A score matrix with a NaN, a per-sample AUROC vector that no longer matches its matrix, or a
subset file naming ids outside the split's training set would each give a wrong number without
a word. The readers here refuse them with one error naming the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from protolib import io
from protolib.errors import InputMismatchError
from protolib.metrics import check_finite, rowwise_auroc  # check_finite lives beside the AUROC it guards


def scores_digest(scores: np.ndarray, val_labels: np.ndarray, sample_auroc: np.ndarray) -> str:
    """A digest of what ``sample_auroc`` was computed from, and of it: ``merge_scores`` stores it
    beside the arrays, so a reader can tell the file is as written without redoing the AUROCs."""
    h = hashlib.blake2b(digest_size=16)
    for array in (scores, val_labels, sample_auroc):
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(array.data)
    return h.hexdigest()


def read_scores(path: str | Path, split: Any = None, split_path: str | Path | None = None) -> dict[str, Any]:
    """A ``matrix.npz`` (scores, candidates, val ids/labels, sample_auroc), checked: finite,
    shapes that agree, ``sample_auroc`` equal to the AUROC of each row (not a stale vector),
    and, given the split, the split's candidates and val set.

    The AUROCs (1 s of CPU at K = 300, |val| = 15 000, in every select job) are recomputed only
    when the stored digest does not match the arrays (:func:`scores_digest`): a file edited, or
    written by anything but ``merge_scores``."""
    data = io.read_npz(path)
    scores = np.asarray(data["scores"])
    check_finite(scores, f"{path} (scores)")
    n, v = scores.shape if scores.ndim == 2 else (-1, -1)
    if scores.ndim != 2 or len(data["candidates"]) != n or len(data["val_labels"]) != v or len(data["sample_auroc"]) != n:
        raise InputMismatchError(
            f"{path}: scores {scores.shape}, {len(data['candidates'])} candidates, {len(data['val_labels'])} val labels "
            f"and {len(data['sample_auroc'])} per-sample AUROCs do not agree; delete it and rerun"
        )
    as_written = str(data.get("digest", "")) == scores_digest(scores, data["val_labels"], data["sample_auroc"])
    if not as_written and not np.allclose(np.asarray(data["sample_auroc"], dtype=np.float64),
                                          rowwise_auroc(scores, data["val_labels"]), rtol=0, atol=1e-9, equal_nan=True):
        raise InputMismatchError(f"{path}: sample_auroc is not the AUROC of the score rows (a stale or edited file); "
                                 "delete it and rerun")
    if split is not None:
        where = split_path or "the split"
        if not np.array_equal(data["candidates"], split.candidates):
            raise InputMismatchError(f"{path}: its candidates are not those of {where}; delete it and rerun")
        if not (np.array_equal(data["val_ids"], split.val_ids) and np.array_equal(data["val_labels"], split.val_labels)):
            raise InputMismatchError(f"{path}: its val set is not that of {where}; delete it and rerun")
    return data


def check_subset_ids(ids: Any, train_ids: np.ndarray, path: str | Path, split_path: str | Path) -> list[int]:
    """A subset's ids as ints; every one must be a training id of the split (else test or val
    images would be trained on and the AUROC inflated)."""
    ids = [int(i) for i in ids]
    if not ids:
        raise InputMismatchError(f"{path}: the subset lists no ids")
    outside = sorted(set(ids) - set(np.asarray(train_ids).tolist()))
    if outside:
        raise InputMismatchError(
            f"{path}: subset ids {outside[:5]}{' ...' if len(outside) > 5 else ''} are not training images of "
            f"{split_path}; a subset may only hold the split's training ids"
        )
    return ids


def read_subset(path: str | Path, split: Any, split_path: str | Path) -> dict[str, Any]:
    """A subset JSON of one class, checked against that class's split (class and ids)."""
    subset = io.read_json(path)
    if "class" in subset and int(subset["class"]) != split.normal_class:
        raise InputMismatchError(f"{path}: a subset of class {subset['class']}, but {split_path} is class "
                                 f"{split.normal_class}")
    subset["ids"] = check_subset_ids(subset.get("ids", []), split.train, path, split_path)
    return subset

"""What a stage reads must agree with what it was derived from; checked where it is read.

A score matrix with a NaN, a per-sample AUROC vector that no longer matches its matrix, a
subset file naming ids outside the split's training set or more ids than its M, or an edited
test AUROC would each give a wrong number without a word. The readers here refuse them with one
error naming the file and how to rebuild it; the digests they check are
:mod:`protolib.integrity`'s.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from protolib import integrity, io
from protolib.errors import InputMismatchError
from protolib.metrics import check_finite, rowwise_auroc  # check_finite lives beside the AUROC it guards

__all__ = [
    "InputMismatchError",
    "check_finite",
    "check_subset_ids",
    "read_result",
    "read_scores",
    "read_subset",
    "read_subset_record",
]


def read_scores(path: str | Path, split: Any = None, split_path: str | Path | None = None) -> dict[str, Any]:
    """A ``matrix.npz`` (scores, candidates, val ids/labels, sample_auroc), checked: its digest,
    finite, shapes that agree, and, given the split, the split's candidates and val set and the
    split it was made from.

    A file whose digest does not match is refused; what is wrong with it is said where it can
    be: its AUROCs are then recomputed (1 s of CPU at K = 300, |val| = 15 000, only for a file
    refused anyway) and compared with ``sample_auroc``."""
    rule = "merge_scores"
    try:
        data, as_written = integrity.read_npz(path, rule), True
    except integrity.EditedFileError:
        data, as_written = io.read_npz(path), False
    check_named(path, data.get("meta") or {}, rule)
    scores = np.asarray(data["scores"])
    check_finite(scores, f"{path} (scores)")
    n, v = scores.shape if scores.ndim == 2 else (-1, -1)
    if (
        scores.ndim != 2
        or len(data["candidates"]) != n
        or len(data["val_labels"]) != v
        or len(data["sample_auroc"]) != n
    ):
        raise integrity.refuse(
            path,
            f"scores {scores.shape}, {len(data['candidates'])} candidates, {len(data['val_labels'])} val labels "
            f"and {len(data['sample_auroc'])} per-sample AUROCs do not agree",
            rule,
        )
    if not as_written:
        if not np.allclose(
            np.asarray(data["sample_auroc"], dtype=np.float64),
            rowwise_auroc(scores, data["val_labels"]),
            rtol=0,
            atol=1e-9,
            equal_nan=True,
        ):
            raise integrity.refuse(
                path, "sample_auroc is not the AUROC of the score rows (a stale or edited file)", rule
            )
        raise integrity.refuse(
            path,
            "its arrays do not match their digest (edited or corrupted since it was written)",
            rule,
            integrity.EditedFileError,
        )
    if split is not None:
        where = split_path or "the split"
        if not np.array_equal(data["candidates"], split.candidates):
            raise integrity.refuse(path, f"its candidates are not those of {where}", rule)
        if not (
            np.array_equal(data["val_ids"], split.val_ids) and np.array_equal(data["val_labels"], split.val_labels)
        ):
            raise integrity.refuse(path, f"its val set is not that of {where}", rule)
        if split_path is not None:
            integrity.check_made_from(path, data, "split", split_path, rule)
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


def _named(path: str | Path) -> dict[str, str]:
    """What a subset or evaluation file's path names (:class:`protolib.layout.Layout`):
    ``{subsets,eval}/<dataset>/<model>/<class>/<method>/M<M>_seed<s>.json``,
    ``eval/<dataset>/<model>/<class>/full.json``, ``transfer/<name>/<class>/<method>/M<M>_seed<s>.json``."""
    p = Path(path)
    up = [q.name for q in p.parents[:5]]
    sized = re.fullmatch(r"M(\d+)_seed(\d+)", p.stem)
    if sized and len(up) == 5 and up[4] in ("subsets", "eval"):
        return {"dataset": up[3], "model": up[2], "class": up[1], "method": up[0], "M": sized[1], "seed": sized[2]}
    if sized and len(up) >= 4 and up[3] == "transfer":
        return {"name": up[2], "method": up[0], "M": sized[1], "seed": sized[2]}
    if p.stem == "full" and len(up) >= 4 and up[3] == "eval":
        return {"dataset": up[2], "model": up[1], "class": up[0], "method": "full"}
    if p.suffix == ".npz" and len(up) >= 4 and up[3] == "scores":  # scores/<dataset>/<model>/<class>/*.npz
        return {"dataset": up[2], "model": up[1], "class": up[0]}
    return {}


def check_named(path: str | Path, record: dict[str, Any], rule: str | None) -> None:
    """A subset or evaluation file holds what its path names: one copied over another's name
    (an M = 5 subset as M = 1, class 8's as class 3's) would be counted as that one."""
    for key, named in _named(path).items():
        if key in record and str(record[key]) != named:
            raise integrity.refuse(
                path, f"holds {key} {record[key]!r}, but its path says {named} (copied or renamed?)", rule
            )


def _rule_of_subset(path: str | Path) -> str:
    return f"select_{Path(path).parent.name}"  # <results>/subsets/.../<method>/M<M>_seed<s>.json


def read_subset_record(path: str | Path) -> dict[str, Any]:
    """A subset JSON as written (its digest checked), M distinct ids; no split at hand."""
    subset = integrity.read_json(path, _rule_of_subset(path))
    check_named(path, subset, _rule_of_subset(path))
    check_subset_size(subset, path, _rule_of_subset(path))
    return subset


def read_subset(
    path: str | Path, split: Any, split_path: str | Path, M_values: list[int] | None = None
) -> dict[str, Any]:
    """A subset JSON of one class, checked: its digest, its class and ids against that class's
    split, M ids without duplicates (and M one of ``M_values``, the study's, when given), and
    made from this split."""
    rule = _rule_of_subset(path)
    subset = integrity.read_json(path, rule)
    check_named(path, subset, rule)
    if "class" in subset and int(subset["class"]) != split.normal_class:
        raise integrity.refuse(
            path, f"a subset of class {subset['class']}, but {split_path} is class {split.normal_class}", rule
        )
    subset["ids"] = check_subset_ids(subset.get("ids", []), split.train, path, split_path)
    check_subset_size(subset, path, rule, M_values)
    integrity.check_made_from(path, subset, "split", split_path, rule)
    return subset


def check_subset_size(
    subset: dict[str, Any], path: str | Path, rule: str | None, M_values: list[int] | None = None
) -> None:
    """M distinct ids: a subset of M = 1 holding three ids would be evaluated as three."""
    ids, M = subset["ids"], subset.get("M")
    if len(set(ids)) != len(ids):
        raise integrity.refuse(
            path, f"the subset repeats ids ({sorted({i for i in ids if ids.count(i) > 1})[:5]})", rule
        )
    if not isinstance(M, int) or len(ids) != M:
        raise integrity.refuse(path, f"lists {len(ids)} ids for M = {M!r}", rule)
    if M_values is not None and M not in M_values:
        raise integrity.refuse(path, f"a subset of M = {M}, not one of selection.M {list(M_values)}", rule)


def _rule_of_result(result: dict[str, Any] | None) -> str | None:
    if not result:
        return None
    if "name" in result and "source" in result:
        return f"transfer_{result['name']}"
    return "evaluate_full" if result.get("method") == "full" else f"evaluate_{result.get('method')}"


def read_result(path: str | Path) -> dict[str, Any]:
    """An evaluation (or transfer evaluation) JSON, checked: its digest, a test AUROC in [0, 1],
    ``n_train`` the number of its ids."""
    try:
        raw = io.read_json(path)
    except (OSError, ValueError):
        raw = None
    rule = _rule_of_result(raw if isinstance(raw, dict) else None)
    result = integrity.read_json(path, rule)
    check_named(path, result, rule)
    value = result.get("test_auroc")
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise integrity.refuse(path, f"test_auroc {value!r} is not a number in [0, 1]", rule)
    if "ids" in result and result.get("n_train") != len(result["ids"]):
        raise integrity.refuse(
            path, f"n_train {result.get('n_train')!r} is not the number of its ids ({len(result['ids'])})", rule
        )
    return result

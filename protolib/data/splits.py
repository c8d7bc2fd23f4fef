"""Splits: the ``Split`` record, the seeded one-vs-rest protocol, and the parts the other
protocols (folder, MVTec, the medical sets' balanced one) build theirs from.

One-vs-rest, the paper's protocol for the natural-image datasets: per normal class c, ``train``
images of c form the training set (a count, or a fraction of the class for small datasets); the
rest of c is split equally into val and test; each is joined by ``anomalies_per_other_class`` x
|normal val| images from every other class as anomalies, val and test anomalies disjoint. K
candidates are drawn from the training set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protolib import integrity

#: fewest normal val (and test) images a one-vs-rest split may leave
MIN_NORMAL_EVAL = 5
#: share of the held-out images that forms val (folder, MVTec; config split.val_fraction)
DEFAULT_VAL_FRACTION = 0.5


def class_seed(seed: int, class_index: int) -> np.random.Generator:
    """An independent generator per (seed, class): classes never share random streams."""
    return np.random.default_rng(np.random.SeedSequence([seed, class_index]))


@dataclass
class Split:
    dataset: str
    normal_class: int
    class_name: str
    seed: int
    train: np.ndarray
    candidates: np.ndarray
    val_ids: np.ndarray
    val_labels: np.ndarray
    test_ids: np.ndarray
    test_labels: np.ndarray
    protocol: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "class": self.normal_class,
            "class_name": self.class_name,
            "seed": self.seed,
            "protocol": self.protocol,
            "train": self.train.tolist(),
            "candidates": self.candidates.tolist(),
            "val": {"ids": self.val_ids.tolist(), "labels": self.val_labels.tolist()},
            "test": {"ids": self.test_ids.tolist(), "labels": self.test_labels.tolist()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Split:
        return cls(
            dataset=d["dataset"],
            normal_class=int(d["class"]),
            class_name=d["class_name"],
            seed=int(d["seed"]),
            train=np.asarray(d["train"], dtype=np.int64),
            candidates=np.asarray(d["candidates"], dtype=np.int64),
            val_ids=np.asarray(d["val"]["ids"], dtype=np.int64),
            val_labels=np.asarray(d["val"]["labels"], dtype=np.int64),
            test_ids=np.asarray(d["test"]["ids"], dtype=np.int64),
            test_labels=np.asarray(d["test"]["labels"], dtype=np.int64),
            protocol=d.get("protocol", {}),
        )

    def check(self, source: str = "split") -> None:
        """Raise if any two parts overlap: a leak would silently inflate every AUROC."""
        parts = {"train": self.train, "val": self.val_ids, "test": self.test_ids}
        names = list(parts)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                common = np.intersect1d(parts[a], parts[b])
                if common.size:
                    raise ValueError(f"{source}: {a} and {b} share {common.size} ids (e.g. {common[:5].tolist()})")
        if not np.isin(self.candidates, self.train).all():
            raise ValueError(f"{source}: candidates must be training ids")


def save_split(
    split: Split, path: str | Path, config: dict[str, Any] | None = None, made_from: dict[str, str] | None = None
) -> None:
    """The split file, with its digest (and its prepared data's: ``made_from``)."""
    payload = split.to_dict()
    payload["config"] = config or {}
    integrity.write_json(path, payload, made_from)


def load_split(path: str | Path) -> Split:
    """A split file, checked: its digest, and no overlap between its parts."""
    record = integrity.read_json(path, "split")
    try:
        split = Split.from_dict(record)
    except (KeyError, TypeError, ValueError) as err:
        raise integrity.refuse(path, f"not a split file ({type(err).__name__}: {err})", "split") from None
    split.check(str(path))
    return split


def one_vs_rest_split(
    labels: np.ndarray,
    normal_class: int,
    *,
    dataset: str,
    class_name: str,
    train: int | float,
    anomalies_per_other_class: float,
    candidates: int,
    seed: int,
    min_normal_eval: int = MIN_NORMAL_EVAL,
) -> Split:
    """``min_normal_eval``: the fewest normal val (and test) images accepted; the pipeline keeps
    the default, tests of a loader's file format on a tiny copy may lower it."""
    labels = np.asarray(labels)
    rng = class_seed(seed, normal_class)
    normal = rng.permutation(np.flatnonzero(labels == normal_class))
    n_class = len(normal)
    if n_class == 0:
        raise ValueError(f"{dataset}: class {class_name!r} has no images")
    n_train = int(round(train * n_class)) if isinstance(train, float) else int(train)
    n_val = (n_class - n_train) // 2
    if n_train < 1 or n_val < min_normal_eval:
        raise ValueError(
            f"datasets.{dataset}.split.train: class {class_name!r} has {n_class} images; split.train = {train} takes "
            f"{n_train} for "
            f"training and leaves {max(n_val, 0)} normal images each for val and test (need at least "
            f"{min_normal_eval} each: an AUROC over fewer normal images means little); lower split.train"
        )
    train_ids = normal[:n_train]
    n_anom = max(1, int(round(anomalies_per_other_class * n_val)))
    val_anom, test_anom = _other_class_anomalies(labels, normal_class, n_anom, rng, dataset, anomalies_per_other_class)
    if candidates > n_train:  # the config and the class's size decide it: refused, not capped
        raise ValueError(
            f"datasets.{dataset}.candidates: {candidates} is more than the {n_train} training images class "
            f"{class_name!r} gets (split.train = {train} of its {n_class}); at most {n_train}"
        )
    k = candidates
    cand = np.sort(rng.choice(train_ids, size=k, replace=False))
    val_ids, val_y = _joined(normal[n_train : n_train + n_val], val_anom)
    test_ids, test_y = _joined(normal[n_train + n_val : n_train + 2 * n_val], test_anom)
    split = Split(
        dataset=dataset,
        normal_class=int(normal_class),
        class_name=class_name,
        seed=int(seed),
        train=np.sort(train_ids).astype(np.int64),
        candidates=cand.astype(np.int64),
        val_ids=val_ids,
        val_labels=val_y,
        test_ids=test_ids,
        test_labels=test_y,
        protocol={
            "kind": "one_vs_rest",
            "train": train,
            "anomalies_per_other_class": anomalies_per_other_class,
            "candidates": int(k),
            "n_class": int(n_class),
            "n_train": int(n_train),
            "n_val_normal": int(n_val),
            "n_anomalies_per_other_class": int(n_anom),
        },
    )
    split.check(f"{dataset}/{class_name}")
    return split


def _other_class_anomalies(
    labels: np.ndarray, normal_class: int, n_anom: int, rng: np.random.Generator, dataset: str, per_other_class: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n_anom`` val and ``n_anom`` test anomalies from every other class (disjoint), drawn in
    class order from ``rng``."""
    val_anom, test_anom = [], []
    for other in np.unique(labels):
        if other == normal_class:
            continue
        pool = np.flatnonzero(labels == other)
        if len(pool) < 2 * n_anom:
            raise ValueError(
                f"datasets.{dataset}.split.anomalies_per_other_class: {per_other_class} asks for {2 * n_anom} "
                f"anomalies (val + test) from every other class, but class {other} has {len(pool)} images; lower it"
            )
        drawn = rng.choice(pool, size=2 * n_anom, replace=False)
        val_anom.append(drawn[:n_anom])
        test_anom.append(drawn[n_anom:])
    return val_anom, test_anom


def _joined(normal_ids: np.ndarray, anomalous: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Normal and anomalous ids as one sorted part with its labels (1 = anomalous)."""
    anomalous_ids = np.concatenate(anomalous) if anomalous else np.empty(0, dtype=np.int64)
    ids = np.concatenate([normal_ids, anomalous_ids]).astype(np.int64)
    y = np.concatenate([np.zeros(len(normal_ids)), np.ones(len(anomalous_ids))]).astype(np.int64)
    order = np.argsort(ids, kind="stable")
    return ids[order], y[order]


# ----------------------------------------------------------------------------- held-out parts (folder, MVTec, medical)
def split_cfg(cfg: dict[str, Any]) -> dict[str, Any]:
    return cfg.get("split") or {}


def val_fraction(cfg: dict[str, Any], default: float = DEFAULT_VAL_FRACTION) -> float:
    frac = split_cfg(cfg).get("val_fraction", default)
    if not isinstance(frac, (int, float)) or isinstance(frac, bool) or not 0 < frac < 1:
        raise ValueError(f"split.val_fraction must be a number in (0, 1), got {frac!r}")
    return float(frac)


def carve(
    ids: np.ndarray, strata: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``ids`` into (val, test), each stratum by ``fraction`` (at least one each when it has two).

    Stratifying (by label, or by MVTec defect type) keeps every kind of anomaly in both sets,
    so the val AUROC the selection optimises measures the same thing as the test AUROC.
    """
    val, test = [], []
    for value in sorted(set(strata.tolist())):
        members = rng.permutation(ids[strata == value])
        n = len(members)
        k = int(round(fraction * n))
        if n >= 2:
            k = min(max(k, 1), n - 1)
        val.append(members[:k])
        test.append(members[k:])
    empty = np.empty(0, dtype=np.int64)
    return (np.concatenate(val) if val else empty).astype(np.int64), (np.concatenate(test) if test else empty).astype(
        np.int64
    )


def build_split(
    *,
    dataset: str,
    normal_class: int,
    class_name: str,
    seed: int,
    train: np.ndarray,
    val_ids: np.ndarray,
    test_ids: np.ndarray,
    anomalous: np.ndarray,
    candidates: int,
    rng: np.random.Generator,
    protocol: dict[str, Any],
    fix: str,
) -> Split:
    """Sorted parts, labels from ``anomalous`` (indexed by id), K candidates; fails when a part lacks a label.

    ``fix`` tells the user what to change when val or test lacks normal or anomalous images.
    """
    train = np.sort(np.asarray(train, dtype=np.int64))
    if len(train) == 0:
        raise ValueError(f"{dataset}/{class_name}: no training images; {fix}")
    parts = {}
    for part, ids in (("val", val_ids), ("test", test_ids)):
        ids = np.sort(np.asarray(ids, dtype=np.int64))
        y = anomalous[ids].astype(np.int64)
        n_anom = int(y.sum())
        if n_anom == 0 or n_anom == len(y):
            lacking = "anomalous" if n_anom == 0 else "normal"
            raise ValueError(
                f"{dataset}/{class_name}: the {part} set has {len(y) - n_anom} normal and {n_anom} anomalous "
                f"images; it needs both (AUROC is measured on it). Add {lacking} images: {fix}"
            )
        parts[part] = (ids, y)
    k = min(int(candidates), len(train))
    if k < int(candidates):  # documented: K = every training image when candidates asks for more
        logging.getLogger(__name__).warning(
            "datasets.%s.candidates: %d is more than the %d training images of class %r; K = %d (all of them), as "
            "recorded in the split file (protocol.candidates)",
            dataset,
            int(candidates),
            len(train),
            class_name,
            k,
        )
    cand = np.sort(rng.choice(train, size=k, replace=False)).astype(np.int64)
    split = Split(
        dataset=dataset,
        normal_class=int(normal_class),
        class_name=class_name,
        seed=int(seed),
        train=train,
        candidates=cand,
        val_ids=parts["val"][0],
        val_labels=parts["val"][1],
        test_ids=parts["test"][0],
        test_labels=parts["test"][1],
        protocol={
            **protocol,
            "candidates": k,
            "n_train": len(train),
            "n_val": [int((parts["val"][1] == 0).sum()), int(parts["val"][1].sum())],
            "n_test": [int((parts["test"][1] == 0).sum()), int(parts["test"][1].sum())],
        },
    )
    split.check(f"{dataset}/{class_name}")
    return split


def n_train_of(train: Any, n: int, what: str) -> int:
    """``split.train`` as a count or a fraction of ``n`` images, with one clear error when too large."""
    if isinstance(train, bool) or not isinstance(train, (int, float)):
        raise ValueError(f"split.train must be a count or a fraction in (0, 1), got {train!r}")
    n_train = int(round(train * n)) if isinstance(train, float) and train < 1 else int(train)
    if n_train < 1 or n - n_train < 2:
        left = "none" if n_train >= n else f"{n - n_train}"
        left = f"leaves {left} for val and test (need at least 2)"
        raise ValueError(
            f"{what}: {n} normal images; split.train = {train} {left}; "
            "set split.train to a smaller count or a fraction such as 0.6"
        )
    return n_train

"""Seeded one-vs-rest splits: the paper's protocol for the natural-image datasets.

Per normal class c: ``train`` images of c form the training set (a count, or a fraction of the
class for small datasets); the rest of c is split equally into val and test; each is joined by
``anomalies_per_other_class`` x |normal val| images from every other class as anomalies, val
and test anomalies disjoint. K candidates are drawn from the training set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protolib import io


#: fewest normal val (and test) images a one-vs-rest split may leave
MIN_NORMAL_EVAL = 5


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
    def from_dict(cls, d: dict[str, Any]) -> "Split":
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


def save_split(split: Split, path: str | Path, config: dict[str, Any] | None = None) -> None:
    payload = split.to_dict()
    payload["config"] = config or {}
    io.write_json(path, payload)


def load_split(path: str | Path) -> Split:
    split = Split.from_dict(io.read_json(path))
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
            f"{dataset}: class {class_name!r} has {n_class} images; split.train = {train} takes {n_train} for "
            f"training and leaves {max(n_val, 0)} normal images each for val and test (need at least "
            f"{min_normal_eval} each: an AUROC over fewer normal images means little); lower split.train"
        )
    train_ids = normal[:n_train]
    val_normal = normal[n_train : n_train + n_val]
    test_normal = normal[n_train + n_val : n_train + 2 * n_val]

    n_anom = max(1, int(round(anomalies_per_other_class * n_val)))
    val_anom, test_anom = [], []
    for other in np.unique(labels):
        if other == normal_class:
            continue
        pool = np.flatnonzero(labels == other)
        if len(pool) < 2 * n_anom:
            raise ValueError(
                f"{dataset}: class {other} has {len(pool)} images, fewer than the {2 * n_anom} "
                f"anomalies (val + test) that split.anomalies_per_other_class = {anomalies_per_other_class} asks for"
            )
        drawn = rng.choice(pool, size=2 * n_anom, replace=False)
        val_anom.append(drawn[:n_anom])
        test_anom.append(drawn[n_anom:])

    k = min(candidates, n_train)
    cand = np.sort(rng.choice(train_ids, size=k, replace=False))

    def joined(normal_ids: np.ndarray, anomalous: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        anomalous_ids = np.concatenate(anomalous) if anomalous else np.empty(0, dtype=np.int64)
        ids = np.concatenate([normal_ids, anomalous_ids]).astype(np.int64)
        y = np.concatenate([np.zeros(len(normal_ids)), np.ones(len(anomalous_ids))]).astype(np.int64)
        order = np.argsort(ids, kind="stable")
        return ids[order], y[order]

    val_ids, val_y = joined(val_normal, val_anom)
    test_ids, test_y = joined(test_normal, test_anom)
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

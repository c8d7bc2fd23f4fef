"""The in-memory dataset every loader returns, and the loader registry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protolib import integrity
from protolib.registry import Registry


class DatasetFilesError(FileNotFoundError, ValueError):
    """A dataset's files are missing or unreadable; catchable as either base class. Every loader
    raises it with a message naming the folder or file and what was expected there."""


@dataclass(frozen=True)
class ImageDataset:
    """All images of a dataset, indexed by a global integer id (the row).

    ``images`` is uint8, shape (N, H, W) for grey or (N, H, W, C) for colour; ``labels`` are
    integer class indices into ``class_names``.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    #: per-image arrays a dataset's own split protocol needs (official split, patient, sex, age ...)
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8:
            raise TypeError(f"{self.name}: images must be uint8, got {self.images.dtype}")
        if self.images.ndim not in (3, 4):
            raise ValueError(f"{self.name}: images must be (N, H, W) or (N, H, W, C), got {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, path: str | Path, provenance: dict[str, Any] | None = None) -> None:
        """The prepared dataset: one array file every later rule reads (fast, no re-decoding)."""
        arrays = {f"meta_{k}": np.asarray(v) for k, v in self.meta.items()}
        integrity.write_npz(
            path,
            images=self.images,
            labels=self.labels,
            **arrays,
            meta={"name": self.name, "class_names": self.class_names, "config": provenance or {}},
        )

    @classmethod
    def load(cls, path: str | Path) -> ImageDataset:
        """The prepared dataset file, refused unless its digest matches (:mod:`protolib.integrity`)."""
        data = integrity.read_npz(path, "prepare")
        data.pop(integrity.FIELD)
        info = data["meta"]
        return cls(
            name=info["name"],
            images=data["images"],
            labels=data["labels"],
            class_names=list(info["class_names"]),
            meta={k[len("meta_") :]: v for k, v in data.items() if k.startswith("meta_")},
        )

    def class_index(self, cls: int | str) -> int:
        """Accept a class by index or by name (as written in config)."""
        if isinstance(cls, str) and cls in self.class_names:
            return self.class_names.index(cls)
        try:
            idx = int(cls)
        except ValueError:
            raise KeyError(f"{self.name}: unknown class {cls!r}; classes: {', '.join(self.class_names)}") from None
        if not 0 <= idx < len(self.class_names):
            raise KeyError(f"{self.name}: class {idx} out of range 0..{len(self.class_names) - 1}")
        return idx


Loader = Callable[[dict[str, Any]], ImageDataset]
DATASETS: Registry[Loader] = Registry("dataset")
#: class names per registered dataset, known without loading it (the workflow plans from these)
CLASS_NAMES: dict[str, list[str]] = {}
#: a dataset's own split protocol; datasets without one use the one-vs-rest protocol
#: signature: (data, normal_class, dataset_cfg, seed, dataset_key) -> Split
SPLIT_PROTOCOLS: dict[str, Callable[..., Any]] = {}
#: the dataset keys that only some loaders read (``split.<key>`` for keys of ``split``): a
#: loader that declares which of them it reads has the others refused by the config check,
#: since a key it never reads (``image_size`` for CIFAR10) would change nothing without a word
OPTIONAL_KEYS = (
    "image_size",
    "slices",
    "color",
    "split.val_fraction",
    "split.val_size",
    "split.test_size",
    "split.max_train",
)
#: per loader, the ``OPTIONAL_KEYS`` it reads (loaders registered without ``reads`` are not checked)
READS: dict[str, tuple[str, ...]] = {}
#: loaders that read no files (their data ship with a library): ``root`` and ``download`` are refused
NO_FILES: set[str] = set()


def register_dataset(
    name: str,
    class_names: list[str],
    split: Callable[..., Any] | None = None,
    reads: tuple[str, ...] | None = None,
    files: bool = True,
) -> Callable[[Loader], Loader]:
    """Register a loader under ``name``; ``split`` overrides the one-vs-rest protocol; ``reads``:
    which of ``OPTIONAL_KEYS`` the loader and its split read; ``files=False``: it reads no
    files (no ``root``)."""
    CLASS_NAMES[name] = list(class_names)
    if not files:
        NO_FILES.add(name)
    if split is not None:
        SPLIT_PROTOCOLS[name] = split
    if reads is not None:
        unknown = sorted(set(reads) - set(OPTIONAL_KEYS))
        if unknown:
            raise ValueError(f"register_dataset({name!r}): reads {unknown}, not among {OPTIONAL_KEYS}")
        READS[name] = tuple(reads)
    return DATASETS.register(name)


def load_dataset(cfg: dict[str, Any]) -> ImageDataset:
    """Load a dataset from its config block (``loader`` names the registered loader)."""
    return DATASETS.get(cfg["loader"])(cfg)


def class_list(cfg: dict[str, Any]) -> list[int]:
    """The normal classes a study runs, as indices (names in config are looked up).

    A class named twice (``[1, '1']``: index and name) is one class, run once."""
    names = CLASS_NAMES[cfg["loader"]]
    if cfg.get("classes", "all") == "all":
        return list(range(len(names)))
    out: list[int] = []
    for c in cfg["classes"]:
        idx = class_index_of(names, c)
        if idx is None:
            raise KeyError(
                f"{cfg['loader']}: unknown class {c!r}; classes: {', '.join(names)} (or 0..{len(names) - 1})"
            )
        if idx not in out:
            out.append(idx)
    return out


def class_index_of(names: list[str], value: Any) -> int | None:
    """A class as written in config (its name, or its index as a number or digit string) -> index."""
    if isinstance(value, str) and value in names:
        return names.index(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        idx = int(value)
        return idx if 0 <= idx < len(names) else None
    return None

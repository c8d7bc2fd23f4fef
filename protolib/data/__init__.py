"""Datasets (by registered name) and the seeded one-vs-rest splits built from them."""

from protolib.data.base import DATASETS, ImageDataset, load_dataset
from protolib.data import digits as _digits  # noqa: F401  (registers "digits")

__all__ = ["DATASETS", "ImageDataset", "load_dataset"]

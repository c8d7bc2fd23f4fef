"""Datasets (by registered name) and the seeded one-vs-rest splits built from them."""

from protolib.data import cifar as _cifar  # noqa: F401  (registers "cifar10", "cifar100")
from protolib.data import digits as _digits  # noqa: F401  (registers "digits")
from protolib.data import fashion_mnist as _fashion_mnist  # noqa: F401  (registers "fashion_mnist")
from protolib.data import folder as _folder  # noqa: F401  (registers "folder")
from protolib.data import medical as _medical  # noqa: F401  (registers "brats", "rsna", "chexpert")
from protolib.data import mnist as _mnist  # noqa: F401  (registers "mnist")
from protolib.data import mvtec as _mvtec  # noqa: F401  (registers "mvtec")
from protolib.data.base import DATASETS, ImageDataset, load_dataset

__all__ = ["DATASETS", "ImageDataset", "load_dataset"]

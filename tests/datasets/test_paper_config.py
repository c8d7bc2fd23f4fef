"""Every paper dataset is registered, the paper config describes the whole study, and a
validated config prepares and splits.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from protolib.data import DATASETS
from protolib.data.base import CLASS_NAMES, SPLIT_PROTOCOLS
from protolib.data.cifar import (
    CIFAR10_CLASSES,
    CIFAR100_COARSE_CLASSES,
)
from protolib.pipeline import make_split, prepare_dataset
from tests.datasets.builders import assert_disjoint, make_brats, make_mvtec
from tests.helpers import REPO

PAPER_DATASETS = ["cifar10", "cifar100", "mnist", "fashion_mnist", "mvtec", "brats", "rsna", "chexpert"]


def test_every_paper_dataset_is_registered_with_its_classes() -> None:
    for name in PAPER_DATASETS + ["folder"]:
        assert name in DATASETS
    assert CLASS_NAMES["cifar10"] == CIFAR10_CLASSES
    assert CLASS_NAMES["cifar100"] == CIFAR100_COARSE_CLASSES and len(CIFAR100_COARSE_CLASSES) == 20
    assert CLASS_NAMES["mnist"] == [str(d) for d in range(10)]
    assert CLASS_NAMES["mvtec"] == [
        "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw",
        "tile", "toothbrush", "transistor", "wood", "zipper",
    ]  # fmt: skip
    for name in ("brats", "rsna", "chexpert", "folder"):
        assert CLASS_NAMES[name] == ["normal"]
        assert name in SPLIT_PROTOCOLS
    assert "mvtec" in SPLIT_PROTOCOLS
    for name in ("cifar10", "cifar100", "mnist"):
        assert name not in SPLIT_PROTOCOLS  # the paper's one-vs-rest protocol


#: the dataset keys this module reads, proposed for $defs.dataset in config.schema.yaml
PROPOSED_SCHEMA = """
image_size:
  type: integer
  minimum: 8
  description: "side of the stored square images; default per loader: mvtec 256, brats/rsna/chexpert 128, folder: the native size (all images must then share it)"
slices:
  type: integer
  minimum: 1
  description: "brats: axial slices per volume around the centre line (paper: 5)"
color:
  enum: [auto, grey, rgb]
  description: "folder: stored channels (auto: grey when every file is grey, else RGB)"
split:
  val_fraction:
    type: number
    exclusiveMinimum: 0
    exclusiveMaximum: 1
    description: "mvtec, folder: share of the held-out images (per defect type / label) that forms val; the rest is test (default 0.5)"
  val_size:
    type: integer
    minimum: 2
    description: "brats, rsna, chexpert: val images, balanced over label (brats) or sex x age group x label (rsna, chexpert); default brats 80, rsna/chexpert 800"
  test_size:
    type: integer
    minimum: 2
    description: "as val_size, for the test set"
  max_train:
    type: [integer, "null"]
    minimum: 1
    description: "brats, rsna, chexpert: draw at most this many of the remaining normal images for training (null: all, the paper's protocol)"
"""


def schema_with_proposed_keys() -> dict[str, Any]:
    from importlib import resources

    full = yaml.safe_load(resources.files("protolib").joinpath("schemas/config.schema.yaml").read_text())
    proposed = yaml.safe_load(PROPOSED_SCHEMA)
    dataset = full["$defs"]["dataset"]["properties"]
    for key, value in proposed.items():
        if key == "split":
            for sub, spec in value.items():
                dataset["split"]["properties"].setdefault(sub, spec)
        else:
            dataset.setdefault(key, value)
    return full


def test_paper_config_describes_the_whole_study() -> None:
    import jsonschema

    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    errors = list(jsonschema.Draft202012Validator(schema_with_proposed_keys()).iter_errors(copy.deepcopy(config)))
    assert not errors, [e.message for e in errors]
    assert set(config["datasets"]) == set(PAPER_DATASETS)
    for key, ds in config["datasets"].items():
        assert ds.get("loader", key) in DATASETS
    assert config["selection"]["M"] == [1, 5, 10, 25]
    assert config["selection"]["random"]["repeats"] == 10
    assert {(r["dataset"], r["model"]) for r in config["runs"]} == {
        ("cifar10", "panda"), ("cifar100", "panda"), ("mnist", "panda"), ("fashion_mnist", "panda"),
        ("mvtec", "patchcore"), ("brats", "fae"), ("rsna", "fae"), ("rsna", "rd"), ("chexpert", "fae"),
    }  # fmt: skip
    models = config["models"]
    assert models["panda"] == {"detector": "panda", "backbone": "resnet152", "weights": "imagenet"}
    assert models["patchcore"] == {"detector": "patchcore", "backbone": "wide_resnet50_2", "weights": "imagenet"}
    assert models["fae"] == {"detector": "fae", "backbone": "resnet18", "weights": "imagenet"}
    assert models["rd"] == {"detector": "rd", "backbone": "wide_resnet50_2", "weights": "imagenet"}
    # 4000 of 6000-7000 per class; CIFAR100's superclasses have 3000 images, two thirds train
    for key, train in (("cifar10", 4000), ("cifar100", 2000), ("mnist", 4000), ("fashion_mnist", 4000)):
        assert config["datasets"][key]["split"]["train"] == train
        assert config["datasets"][key]["candidates"] == 300
    assert config["datasets"]["rsna"]["split"]["val_size"] == 800
    assert config["datasets"]["brats"]["split"]["val_size"] == 80


def test_validated_config_prepares_and_splits(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    textures: dict[str, np.ndarray],
    brain: tuple[np.ndarray, np.ndarray],
) -> None:
    """The path the workflow takes (schema defaults filled in, e.g. split.train = 4000 everywhere),
    with the new keys this module proposes added to the schema (a no-op once the schema has them)."""
    from protolib import config as protolib_config

    monkeypatch.setattr(protolib_config, "schema", schema_with_proposed_keys)
    make_mvtec(tmp_path / "mvtec", textures)
    make_brats(tmp_path / "brats", brain, n_patients=6)
    raw = {
        "seed": 0,
        "datasets": {
            "mvtec": {"root": str(tmp_path / "mvtec"), "classes": ["carpet"], "image_size": 32, "candidates": 5},
            "brats": {
                "root": str(tmp_path / "brats"),
                "image_size": 64,
                "split": {"val_size": 6, "test_size": 6},
                "candidates": 5,
            },
        },
        "models": {"knn": {"detector": "knn", "backbone": "pixels"}},
        "runs": [{"dataset": "mvtec", "model": "knn"}, {"dataset": "brats", "model": "knn"}],
        "selection": {"M": [1, 5], "methods": ["greedy"]},
    }
    config = protolib_config.validate(copy.deepcopy(raw))
    assert config["datasets"]["brats"]["split"]["train"] == 4000  # the one-vs-rest default, ignored by brats
    for key, cls in (("mvtec", 3), ("brats", 0)):
        prepare_dataset(config, key, tmp_path / f"{key}.npz")
        split = make_split(config, key, cls, tmp_path / f"{key}.npz", tmp_path / f"{key}.json")
        assert_disjoint(split)
        assert len(split.candidates) == 5
    assert split.protocol["val_size"] == 6 and len(split.val_ids) == 6

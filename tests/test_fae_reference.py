"""FAE's frozen ResNet18 behaves as in the reference (FeliMe/feature-autoencoder, whose trainer calls
``model.train()`` on the whole model): BatchNorm normalises training batches with their own
statistics, its running statistics become the training images', and scoring uses those. The
per-sample matrix stays exact under that behaviour (equal to one fit per image, float64)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from protolib.config import validate
from protolib.models import make_detector
from protolib.models.feature_maps import prepare_images
from tests.helpers import small_config

FAE = {"detector": "fae", "backbone": "resnet18", "weights": "none", "image_size": 32, "steps": 3,
       "hidden_dims": [8, 16], "lr": 1e-3, "dtype": "float64", "batch_size": 8}


def build(**over) -> object:
    config = small_config(Path("results"), models={"fae": {**FAE, **over}}, runs=[{"dataset": "digits", "model": "fae"}])
    torch.manual_seed(0)
    return make_detector(validate(config)["models"]["fae"], device="cpu")


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32), dtype=np.uint8)


def test_extractor_statistics_become_the_training_images():
    det = build()
    assert det.extractor_bn == "batch"
    image = images(1, 0)
    imagenet = det.extractor.stem[1].running_mean.clone()
    det.fit(image)
    # the stem BatchNorm's running mean after T steps on one image, by hand
    with torch.no_grad():
        conv = det.extractor.stem[0](prepare_images(image, 32, 32, imagenet_norm=False).double())
    w = 0.9 ** FAE["steps"]
    expected = w * imagenet + (1 - w) * conv.mean((0, 2, 3))
    torch.testing.assert_close(det.bn_state["stem.1.running_mean"], expected)
    # scoring uses those statistics: the features differ from the ImageNet-statistics ones
    test = images(2, 1)
    frozen = det.features(test, state={})[0]  # the extractor's own (ImageNet) statistics
    assert not torch.allclose(det.features(test)[0], frozen)


def test_per_sample_matrix_equals_one_fit_per_image_with_reference_batchnorm():
    det = build()
    train, val = images(3, 2), images(4, 3)
    fast = det.score_matrix(train, val)
    slow = np.stack([det.fit(train[i : i + 1]).score(val) for i in range(len(train))])
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    # the old eval-mode behaviour is an option, and gives other scores
    other = build(extractor_bn="imagenet")
    assert not np.allclose(other.score_matrix(train, val), fast)

"""Reverse Distillation with the paper's settings (iolag/UPD_study ``RDtrainer.py``, chest X-rays):
no ImageNet normalisation, no blur, image score = mean of the map, minibatches of 4; each is the
default after config validation, and can be switched back to RD4AD's by config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from protolib.config import validate
from protolib.models import make_detector
from protolib.models.feature_maps import prepare_images
from tests.helpers import small_config

RD = {"detector": "rd", "backbone": "resnet18", "weights": "none", "image_size": 32, "steps": 2,
      "width": 0.25, "bottleneck_blocks": 1, "decoder_blocks": [1, 1, 1]}


def validated(model: dict) -> dict:
    config = small_config(Path("results"), models={"rd": dict(model)}, runs=[{"dataset": "digits", "model": "rd"}])
    return validate(config)["models"]["rd"]


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32), dtype=np.uint8)


def test_defaults_are_upd_studys_chest_xray_settings():
    torch.manual_seed(0)
    det = make_detector(validated(RD), device="cpu")
    assert (det.imagenet_norm, det.map_sigma, det.score_reduce, det.train_batch_size) == (False, 0.0, "mean", 4)
    # the encoder sees [0, 1] pixels, not ImageNet-normalised ones
    x = images(2, 0)
    raw = det.extractor(prepare_images(x, 32, resize=32, imagenet_norm=False))
    for got, want in zip(det.features(x), raw):
        torch.testing.assert_close(got, want)
    det.fit(images(2, 1))
    test = images(3, 2)
    maps = det.anomaly_map(test)
    np.testing.assert_allclose(det.score(test), maps.reshape(3, -1).mean(1), rtol=1e-5)
    # unblurred: the map is the sum of the per-scale 1 - cosine maps, upsampled
    feats = det.features(test)
    with torch.inference_mode():
        dec = det.net(*feats)
    by_hand = sum(
        torch.nn.functional.interpolate((1 - torch.nn.functional.cosine_similarity(e, d, dim=1)).unsqueeze(1),
                                        size=(32, 32), mode="bilinear", align_corners=True).squeeze(1)
        for e, d in zip(feats, dec)
    )
    np.testing.assert_allclose(maps, by_hand.numpy(), rtol=1e-5, atol=1e-6)

    # RD4AD's settings stay one config line away
    det = make_detector(validated({**RD, "imagenet_norm": True, "map_sigma": 4, "score_reduce": "max",
                                   "train_batch_size": 16}), device="cpu")
    assert (det.imagenet_norm, det.map_sigma, det.score_reduce, det.train_batch_size) == (True, 4.0, "max", 16)

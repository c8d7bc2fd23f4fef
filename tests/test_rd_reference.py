"""Reverse Distillation with the paper's settings (iolag/UPD_study ``RDtrainer.py``, chest X-rays):
no ImageNet normalisation, no blur, image score = mean of the map, minibatches of 4; each is the
default after config validation, and can be switched back to RD4AD's by config. At those
defaults protolib's maps and scores equal anomalib's RD torch model on the same weights, its map
unblurred and reduced by the mean as UPD_study's ``get_anomaly_map`` / ``val_step`` do (ResNet18,
and WideResNet50-2, the paper's backbone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from protolib.config import validate
from protolib.models import make_detector
from protolib.models.feature_maps import prepare_images
from tests.helpers import small_config
from tests.test_anomalib_crosscheck import SIZE, rd_pair
from tests.test_anomalib_crosscheck import images as textured

RD = {
    "detector": "rd",
    "backbone": "resnet18",
    "weights": "none",
    "image_size": 32,
    "steps": 2,
    "width": 0.25,
    "bottleneck_blocks": 1,
    "decoder_blocks": [1, 1, 1],
}


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
        torch.nn.functional.interpolate(
            (1 - torch.nn.functional.cosine_similarity(e, d, dim=1)).unsqueeze(1),
            size=(32, 32),
            mode="bilinear",
            align_corners=True,
        ).squeeze(1)
        for e, d in zip(feats, dec)
    )
    np.testing.assert_allclose(maps, by_hand.numpy(), rtol=1e-5, atol=1e-6)

    # RD4AD's settings stay one config line away
    det = make_detector(
        validated({**RD, "imagenet_norm": True, "map_sigma": 4, "score_reduce": "max", "train_batch_size": 16}),
        device="cpu",
    )
    assert (det.imagenet_norm, det.map_sigma, det.score_reduce, det.train_batch_size) == (True, 4.0, "max", 16)


def _agree_with_anomalib_unblurred(ours, theirs, test: np.ndarray) -> None:
    """Student outputs, map and score of protolib (at its defaults) against anomalib fed the same
    [0, 1] input (anomalib normalises outside its torch model; UPD_study does not normalise)."""
    x = prepare_images(test, SIZE, resize=SIZE, imagenet_norm=False)
    feats = ours.features(test)
    with torch.no_grad():
        enc = list(theirs.encoder(x).values())
        dec = theirs.decoder(theirs.bottleneck(enc))
        for m, t in zip(ours.net(*feats), dec):  # float32 through up to 13 random blocks: to the
            # tensor's scale (WRN50-2's grow large; the maps below are cosines, scale one)
            torch.testing.assert_close(m, t, rtol=1e-4, atol=1e-5 * float(t.abs().max()))
        their_map = theirs(x).anomaly_map[:, 0].numpy()  # unblurred: sigma 0.1 is a 1-tap kernel
    our_map = ours.anomaly_map(test)
    np.testing.assert_allclose(our_map, their_map, rtol=1e-4, atol=1e-6)
    # UPD_study's chest X-ray score: the mean of the map
    np.testing.assert_allclose(ours.score(test), their_map.reshape(len(test), -1).mean(1), rtol=1e-4)


def test_defaults_agree_with_anomalib_unblurred_and_upd_studys_mean_score(tmp_path):
    ours, theirs = rd_pair(tmp_path, sigma=0.1)
    _agree_with_anomalib_unblurred(ours, theirs, textured(3, 4))


def test_wide_resnet50_2_at_the_defaults_agrees_with_anomalib(tmp_path):
    """The paper's backbone (random weights, 64 px, two images: a few seconds of forward passes);
    anomalib's bottleneck with RD4AD's width_per_group=128."""
    ours, theirs = rd_pair(tmp_path, backbone="wide_resnet50_2", sigma=0.1)
    _agree_with_anomalib_unblurred(ours, theirs, textured(2, 5))

"""PatchCore against its reference (amazon-science/patchcore-inspection @ fcaa92f, the pieces used
transcribed in tests/patchcore_reference_code.py): the image score is the max over patches of the
*squared* distance to the nearest memory-bank patch (faiss IndexFlatL2, one neighbour,
``PatchMaker.score``), checked by brute force on the detector's own features; the two-layer patch
features (resizing, per-layer and joint channel pooling) and the approximate greedy core-set at
ratio 0.1 equal the reference's code."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from protolib.models import make_detector
from protolib.models.feature_maps import prepare_images
from tests.patchcore_reference_code import ApproximateGreedyCoresetSampler, embed

CFG = {
    "detector": "patchcore",
    "backbone": "resnet18",
    "weights": "none",
    "image_size": 32,
    "pretrain_embed_dim": 64,
    "target_embed_dim": 64,
    "coreset_ratio": 1.0,
    "batch_size": 8,
}


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32), dtype=np.uint8)


def test_image_score_is_max_over_patches_of_squared_nearest_distance():
    torch.manual_seed(0)
    det = make_detector(CFG, device="cpu")
    train, test = images(3, 0), images(4, 1)
    det.fit(train)
    bank = det.patch_features(train).reshape(-1, CFG["target_embed_dim"]).double()
    query = det.patch_features(test).double()
    d2 = ((query.reshape(len(test), -1, 1, bank.shape[1]) - bank[None, None]) ** 2).sum(-1)
    expected = d2.amin(-1).amax(-1).numpy()
    np.testing.assert_allclose(det.score(test), expected, rtol=1e-4)
    row = det.score_matrix(train[:1], test)[0]  # the per-sample fast path uses the same distance
    np.testing.assert_allclose(row, det.fit(train[:1]).score(test), rtol=1e-4)


# ----------------------------------------------------------------------------- against the reference code
SIZE = 64


def pictures(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE), dtype=np.uint8)


def default_detector():
    """protolib's PatchCore at its defaults (layer2 + layer3, 3x3 neighbourhood, 1024 -> 1024,
    core-set 10 % on a 128-d projection from 10 starts) on a seeded random ResNet18, 64 px."""
    torch.manual_seed(0)
    return make_detector(
        {"detector": "patchcore", "backbone": "resnet18", "weights": "none", "image_size": SIZE}, device="cpu"
    )


def test_two_layer_patch_features_equal_the_reference_embedding():
    """layer3 resized to layer2's grid, each layer's channels pooled to 1024, the two pooled to
    1024 (the reference's PatchCore._embed, Preprocessing, Aggregator). The reference pools the
    unfolded (C, 3, 3) neighbourhood, protolib averages the neighbourhood first (its documented
    deviation): so the reference runs with patch size 1 on the 3x3-averaged maps."""
    det = default_detector()
    assert det.layers == ["layer2", "layer3"] and det.patch_size == 3
    x = pictures(2, 0)
    with torch.no_grad():
        maps = det.extractor(prepare_images(x, SIZE))
        averaged = [F.avg_pool2d(m, 3, stride=1, padding=1) for m in maps]
        expected = embed(averaged, 1, 1024, 1024)
    got = det.patch_features(x)
    assert got.shape[-1] == 1024
    torch.testing.assert_close(got.reshape(-1, 1024), expected, rtol=1e-5, atol=1e-6)


def test_coreset_equals_the_reference_sampler_on_the_same_draws():
    """Core-set ratio 0.1 (< 1): the memory bank of ``fit`` equals the reference's
    ApproximateGreedyCoresetSampler given protolib's seeded projection and start points (the
    reference draws them from global RNGs); its count of start points (10) is checked too."""
    det = default_detector()
    train, test = pictures(3, 1), pictures(2, 2)
    det.fit(train)
    feats = det.patch_features(train).reshape(-1, 1024)
    projection, starts = det._sampler_state(len(feats), feats.shape[1])
    assert projection is not None and projection.shape == (1024, 128)
    reference = ApproximateGreedyCoresetSampler(0.1, projection.T, starts.tolist()).run(feats)
    assert len(reference) == int(len(feats) * 0.1) < len(feats)
    torch.testing.assert_close(det.bank, reference)
    # the per-sample matrix samples each candidate's own core-set the same way
    rows = det.score_matrix(train[:2], test)
    np.testing.assert_allclose(rows, np.stack([det.fit(train[i : i + 1]).score(test) for i in range(2)]), rtol=1e-4)

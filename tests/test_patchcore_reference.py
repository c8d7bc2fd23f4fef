"""PatchCore against its reference (amazon-science/patchcore-inspection): the image score is the
max over patches of the *squared* distance to the nearest memory-bank patch (faiss IndexFlatL2,
one neighbour, ``PatchMaker.score``), checked by brute force on the detector's own features."""

from __future__ import annotations

import numpy as np
import torch

from protolib.models import make_detector

CFG = {"detector": "patchcore", "backbone": "resnet18", "weights": "none", "image_size": 32,
       "pretrain_embed_dim": 64, "target_embed_dim": 64, "coreset_ratio": 1.0, "batch_size": 8}


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

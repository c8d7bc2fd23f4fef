"""FAE against its released reference code (FeliMe/feature-autoencoder @ 16ee46d, transcribed in
tests/fae_reference_code.py): the same seeded random ResNet18 and autoencoder weights in both,
protolib at its own defaults (only ``weights``, ``dtype``, ``image_size`` and, for training,
``steps`` and ``dropout`` set), the reference at its ``base_config.py`` values with the paper's hidden dims [50, 100]
(protolib's one documented architecture deviation). Features, anomaly maps, loss and image
scores agree to float64 rounding, untrained and after training steps with the reference's
``train_step`` on the same minibatches (the reference's DataLoader order replaced by protolib's
shuffler, which only picks the images; the batch size is the reference's). The reference's loss
and maps are -SSIM, protolib's 1 - SSIM: compared with that offset of one. Flipping any of
protolib's FAE defaults (layers, center_input, ssim_window, encoder_final_conv,
train_batch_size, top_fraction) fails a test here (benchmarks/mutation_check.py).

Also: FAE's frozen ResNet18 behaves as the reference's trainer (``model.train()`` on the whole
model) makes it: BatchNorm normalises training batches with their own statistics, its running
statistics become the training images', and scoring uses those. The per-sample matrix stays exact
under that behaviour (equal to one fit per image, float64)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision

from protolib.config import validate
from protolib.models import make_detector
from protolib.models.feature_maps import prepare_images
from protolib.models.vmap_training import minibatch_stream
from tests.fae_reference_code import REFERENCE_CONFIG, reference_model, train_step
from tests.helpers import small_config

FAE = {
    "detector": "fae",
    "backbone": "resnet18",
    "weights": "none",
    "image_size": 32,
    "steps": 3,
    "hidden_dims": [8, 16],
    "lr": 1e-3,
    "dtype": "float64",
    "batch_size": 8,
}


def build(**over) -> object:
    config = small_config(
        Path("results"), models={"fae": {**FAE, **over}}, runs=[{"dataset": "digits", "model": "fae"}]
    )
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
        conv = det.extractor.stem[0](prepare_images(image, 32, 32, imagenet_norm=False, center=True).double())
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


# ----------------------------------------------------------------------------- against the reference code
PAPER_HIDDEN = [50, 100]  # the paper's widths (protolib's default); the released config has 4 layers
SIZE = 64  # image_size on both sides (the default, 128, on both too): the reference's float64
# grouped-conv SSIM is slow on the CPU


def resnet18_file(path: Path) -> torchvision.models.ResNet:
    """A seeded random torchvision ResNet18 (non-trivial BatchNorm statistics), saved to ``path``."""
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), path)
    return net


def reference_images(n: int, seed: int) -> np.ndarray:
    """Images with every pixel > 0 (the reference scores inside x > 0)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, (n, 1, 1))
    return np.clip(base + rng.integers(-50, 50, (n, SIZE, SIZE)), 1, 255).astype(np.uint8)


def as_reference_input(images: np.ndarray) -> torch.Tensor:
    """The reference's input: (N, 1, H, W) floats in [0, 1]."""
    return torch.from_numpy(images).double().div(255.0)[:, None]


def copy_autoencoder(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """protolib's autoencoder weights into the reference's, layer by layer in construction order
    (the shapes must match one to one: another layer set or a missing layer fails here)."""
    src = list(ours.state_dict().items())
    dst = [(k, v) for k, v in theirs.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert [tuple(v.shape) for _, v in src] == [tuple(v.shape) for _, v in dst], (
        f"autoencoders differ: protolib {[k for k, _ in src]} vs reference {[k for k, _ in dst]}"
    )
    with torch.no_grad():
        for (_, a), (_, b) in zip(src, dst):
            b.copy_(a)


def pair(tmp_path: Path, randomise: bool = True, **over):
    """protolib's FAE at its defaults (``over`` set) and the reference model on the same weights
    (float64); the autoencoders start from protolib's seeded initial weights (what its ``fit``
    starts from), with ``randomise`` their BatchNorm parameters and statistics randomised (so
    eval mode is tested with non-trivial ones)."""
    path = tmp_path / "r18.pth"
    net = resnet18_file(path)
    ours = make_detector({"detector": "fae", "weights": str(path), "dtype": "float64", **over}, device="cpu")
    theirs = reference_model(net, hidden_dims=PAPER_HIDDEN, dropout=ours.dropout, image_size=ours.image_size)
    # the reference's constructor ran a random batch through the extractor in train mode: reload
    # the saved weights and statistics (the extractor holds the ResNet's own modules)
    net.load_state_dict(torch.load(path, weights_only=True))
    theirs.double()
    ae = ours.new_net()
    torch.manual_seed(1)
    with torch.no_grad():
        for name, t in ae.state_dict().items() if randomise else ():
            if name.endswith(("running_mean", "bias")):
                t.uniform_(-0.1, 0.1)
            elif name.endswith("running_var") or (name.endswith("weight") and t.ndim == 1):
                t.uniform_(0.5, 1.5)
    copy_autoencoder(ae, theirs.ae)
    return ours, theirs, ae


def test_untrained_maps_loss_and_scores_equal_the_reference(tmp_path):
    ours, theirs, ae = pair(tmp_path, image_size=SIZE)
    ours.net = ae.eval()
    theirs.eval()
    test = reference_images(2, 5)
    x = as_reference_input(test)
    with torch.no_grad():
        ref_feats = theirs.extractor(x)
        ref_map, ref_score = theirs.predict_anomaly(x)
        ref_loss = theirs.loss(x)["rec_loss"]
    feats = ours.features(test)
    assert feats[0].shape == ref_feats.shape, "another feature set than the reference's"
    torch.testing.assert_close(feats[0], ref_feats, rtol=0, atol=1e-5)
    # the reference's map is -SSIM, protolib's 1 - SSIM
    np.testing.assert_allclose(ours.anomaly_map(test), ref_map[:, 0].numpy() + 1.0, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours.score(test), ref_score.numpy() + 1.0, rtol=0, atol=1e-5)
    with torch.no_grad():
        loss = ours.loss(ae, feats, None)
    assert abs(float(loss) - (float(ref_loss) + 1.0)) < 1e-5


def test_training_steps_equal_the_reference_train_step(tmp_path):
    """Two steps on 34 images: the reference's batch (32) splits them 32 + 2; the extractor's
    BatchNorm runs in train mode (batch statistics, running statistics updated) on both sides."""
    steps = 2
    ours, theirs, _ = pair(tmp_path, randomise=False, steps=steps, dropout=0.0, image_size=SIZE)
    train, test = reference_images(34, 6), reference_images(3, 7)
    ours.fit(train)
    x = as_reference_input(train)
    optimizer = torch.optim.Adam(
        theirs.parameters(), lr=REFERENCE_CONFIG["lr"], weight_decay=REFERENCE_CONFIG["weight_decay"]
    )
    stream = minibatch_stream(len(train), REFERENCE_CONFIG["batch_size"], torch.Generator().manual_seed(ours.seed))
    for _ in range(steps):
        train_step(theirs, optimizer, x[next(stream)])
    theirs.eval()
    with torch.no_grad():
        ref_map, ref_score = theirs.predict_anomaly(as_reference_input(test))
    np.testing.assert_allclose(ours.anomaly_map(test), ref_map[:, 0].numpy() + 1.0, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours.score(test), ref_score.numpy() + 1.0, rtol=0, atol=1e-5)

"""PatchCore and Reverse Distillation against an independent, maintained implementation: anomalib
(torch models only, on the CPU, ``pre_trained=False``: no download). Both sides get the same
seeded random ResNet18 weights (torchvision and timm name ResNet parameters alike) and the same
input tensors (anomalib normalises inputs outside its torch models).

Tolerances: the networks run in float32 on both sides; the same convolutions in a different
order agree to about 1e-6 relative, and squared distances of 64..128-d float32 features by the
Gram expansion (both sides) lose a further few 1e-6 relative; 1e-4 relative leaves a margin of
10x while any difference in a rule (a missing square, another pooling, another neighbour count)
changes scores by far more than 1 %.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision
from anomalib.models.image.patchcore.torch_model import PatchcoreModel
from anomalib.models.image.reverse_distillation.anomaly_map import AnomalyMapGenerationMode, AnomalyMapGenerator
from anomalib.models.image.reverse_distillation.components import get_bottleneck_layer
from anomalib.models.image.reverse_distillation.loss import ReverseDistillationLoss
from anomalib.models.image.reverse_distillation.torch_model import ReverseDistillationModel

from protolib.models import make_detector
from protolib.models.feature_maps import prepare_images

SIZE = 64


def resnet18_weights(seed: int, path, backbone: str = "resnet18") -> dict[str, torch.Tensor]:
    """Seeded random torchvision weights of ``backbone`` (ResNet18), also saved to ``path``
    (protolib's ``weights: <file>``)."""
    torch.manual_seed(seed)
    net = getattr(torchvision.models, backbone)(weights=None)
    for m in net.modules():  # non-trivial BatchNorm statistics, so eval mode is tested too
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), path)
    return {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}


def load_timm(extractor: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    missing, _ = extractor.feature_extractor.load_state_dict(weights, strict=False)
    assert not [k for k in missing if not k.endswith("num_batches_tracked")], missing


def images(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, (n, 1, 1), dtype=np.int64)
    return np.clip(base + rng.integers(-40, 40, (n, SIZE, SIZE)), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- PatchCore
def patchcore_pair(layers: list[str], tmp_path):
    weights = resnet18_weights(0, tmp_path / "r18.pth")
    ours = make_detector(
        {
            "detector": "patchcore",
            "backbone": "resnet18",
            "weights": str(tmp_path / "r18.pth"),
            "image_size": SIZE,
            "layers": layers,
            "pretrain_embed_dim": 128,
            "target_embed_dim": 128,
            "coreset_ratio": 1.0,
        },
        device="cpu",
    )
    theirs = PatchcoreModel(layers=layers, backbone="resnet18", pre_trained=False, num_neighbors=1).eval()
    load_timm(theirs.feature_extractor, weights)
    return ours, theirs


def test_patchcore_feature_maps_agree_with_anomalib(tmp_path):
    ours, theirs = patchcore_pair(["layer2", "layer3"], tmp_path)
    x = prepare_images(images(3, 0), SIZE)  # resize 73, centre crop 64, ImageNet normalisation
    with torch.no_grad():
        mine = ours.extractor(x)
        other = theirs.feature_extractor(x)
    for layer, m in zip(["layer2", "layer3"], mine):
        torch.testing.assert_close(m, other[layer], rtol=1e-4, atol=1e-5)


def test_patchcore_image_scores_agree_with_anomalib_on_the_same_memory_bank(tmp_path):
    """One layer (layer2, 128 channels): the channel pooling of the reference (to 128) is then the
    identity, so the patch features of both must be equal; with core-set ratio 1 the memory
    banks are all training patches. anomalib returns Euclidean distances, the reference (faiss
    IndexFlatL2) and protolib squared ones: protolib's score = anomalib's score squared.
    With layer2 + layer3 anomalib concatenates the layers where the reference pools their
    channels to a common width (``pretrain_embed_dim``), a difference on purpose: only the maps
    (test above) and the scoring rule on the same features are compared there."""
    ours, theirs = patchcore_pair(["layer2"], tmp_path)
    train, test = images(4, 1), images(5, 2)
    ours.fit(train)
    theirs.train()
    with torch.no_grad():
        theirs(prepare_images(train, SIZE))
    theirs.memory_bank = torch.vstack(theirs.embedding_store)
    theirs.embedding_store.clear()
    theirs.eval()
    torch.testing.assert_close(theirs.memory_bank, ours.bank, rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        result = theirs(prepare_images(test, SIZE))
    np.testing.assert_allclose(ours.score(test), result.pred_score.double().numpy() ** 2, rtol=1e-4)
    np.testing.assert_allclose(
        ours.score_matrix(train[:1], test)[0],
        _anomalib_single(theirs, ours.patch_features(train[:1]), test) ** 2,
        rtol=1e-4,
    )


def _anomalib_single(theirs: PatchcoreModel, bank: torch.Tensor, test: np.ndarray) -> np.ndarray:
    theirs.memory_bank = bank.reshape(-1, bank.shape[-1])
    with torch.no_grad():
        return theirs(prepare_images(test, SIZE)).pred_score.double().numpy()


# ----------------------------------------------------------------------------- Reverse Distillation
def _pairs(ours: torch.nn.Module, theirs: torch.nn.Module):
    """(our tensor, their tensor) for every parameter and BatchNorm statistic, in module order."""

    def tensors(module):
        return [
            (n, t)
            for n, t in list(module.named_parameters()) + list(module.named_buffers())
            if not n.endswith("num_batches_tracked")
        ]

    mine = sorted(tensors(ours), key=lambda nt: _order(ours, nt[0]))
    other = sorted(tensors(theirs), key=lambda nt: _order(theirs, nt[0]))
    assert len(mine) == len(other), (len(mine), len(other))
    return [(a, b) for (_, a), (_, b) in zip(mine, other)]


def _order(module: torch.nn.Module, name: str) -> tuple[int, int]:
    """Position of a tensor: its module's place in ``named_modules`` order, then weight/bias/stats."""
    owner, _, leaf = name.rpartition(".")
    names = [n for n, _ in module.named_modules()]
    return names.index(owner), ["weight", "bias", "running_mean", "running_var"].index(leaf)


RD4AD = {"map_sigma": 4, "imagenet_norm": True}  # RD4AD's blur and input, not protolib's defaults


def rd_pair(tmp_path, backbone: str = "resnet18", sigma: float = 4, **settings):
    """protolib's RD (``settings`` over its defaults) and anomalib's, whose map is blurred with
    ``sigma`` (0.1: a 1x1 kernel, i.e. no blur), on the same random weights. For WideResNet50-2
    anomalib's bottleneck gets RD4AD's ``width_per_group=128`` (anomalib's default is 64)."""
    weights = resnet18_weights(1, tmp_path / "backbone.pth", backbone)
    torch.manual_seed(2)
    ours = make_detector(
        {
            "detector": "rd",
            "backbone": backbone,
            "weights": str(tmp_path / "backbone.pth"),
            "image_size": SIZE,
            **settings,
        },
        device="cpu",
    )
    net = ours.new_net()
    for m in net.modules():  # trained-looking BatchNorm statistics
        if hasattr(m, "running_var"):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    theirs = ReverseDistillationModel(
        backbone, (SIZE, SIZE), ["layer1", "layer2", "layer3"], AnomalyMapGenerationMode.ADD, pre_trained=False
    )
    theirs.anomaly_map_generator = AnomalyMapGenerator((SIZE, SIZE), sigma=sigma, mode=AnomalyMapGenerationMode.ADD)
    if backbone == "wide_resnet50_2":
        theirs.bottleneck = get_bottleneck_layer(backbone, width_per_group=128)
    load_timm(theirs.encoder, weights)
    b = theirs.bottleneck
    pairs = [
        (net.fuse1[0], b.conv1),
        (net.fuse1[1], b.bn1),
        (net.fuse1[3], b.conv2),
        (net.fuse1[4], b.bn2),
        (net.fuse2[0], b.conv3),
        (net.fuse2[1], b.bn3),
        (net.embed, b.bn_layer),
        (net.de_layer3, theirs.decoder.layer1),
        (net.de_layer2, theirs.decoder.layer2),
        (net.de_layer1, theirs.decoder.layer3),
    ]
    with torch.no_grad():
        for mine, other in pairs:
            for a, t in _pairs(mine, other):
                assert a.shape == t.shape, (a.shape, t.shape)
                t.copy_(a)
    ours.net = net.eval()
    return ours, theirs.eval()


def test_reverse_distillation_maps_loss_and_anomaly_map_agree_with_anomalib(tmp_path):
    ours, theirs = rd_pair(tmp_path, **RD4AD)
    test = images(3, 3)
    x = prepare_images(test, SIZE, resize=SIZE, imagenet_norm=True)
    feats = ours.features(test)
    with torch.no_grad():
        enc = list(theirs.encoder(x).values())
        for m, t in zip(feats, enc):  # the frozen encoder's three scales
            torch.testing.assert_close(m, t, rtol=1e-4, atol=1e-5)
        dec = theirs.decoder(theirs.bottleneck(enc))
        mine = ours.net(*feats)
        for m, t in zip(mine, dec):  # the student's three scales, same weights
            torch.testing.assert_close(m, t, rtol=1e-4, atol=1e-5)
        # the training loss: RD4AD's 1 - cosine of the flattened maps, summed over scales
        ours_loss = ours.loss(ours.net, feats, None)
        torch.testing.assert_close(ours_loss, ReverseDistillationLoss()(enc, dec), rtol=1e-4, atol=1e-6)
    # the anomaly map, summed over scales and smoothed with sigma 4 (kernel 33) on both sides;
    # at the border anomalib (kornia) reflects without repeating the edge pixel, scipy's
    # 'reflect' (protolib) repeats it: a difference on purpose, so the interior is compared
    with torch.no_grad():
        their_map = theirs(x).anomaly_map[:, 0].numpy()
    our_map = ours.anomaly_map(test)
    r = 16
    np.testing.assert_allclose(our_map[:, r:-r, r:-r], their_map[:, r:-r, r:-r], rtol=1e-4, atol=1e-6)
    # image score: anomalib takes the max of its map, UPD_study (protolib's default) the mean
    assert ours.score_reduce == "mean"
    np.testing.assert_allclose(ours.score(test), our_map.reshape(3, -1).mean(1), rtol=1e-5)

"""PANDA, PatchCore, FAE and RD: each fits, scores, ranks drawn defects above normal texture
crops, saves/loads, and every fast per-sample path equals its definition.

Data: crops of scikit-image textures (brick), anomalous copies get a dark disc. Weights are
random (``weights: none``; no downloads here), so AUROCs only show that the scoring rules see a
local defect, not the paper's numbers. Backbones are ResNet18, images 32-64 px, few steps.
FAE/RD equality tests run in float64: in float32 the batched and sequential trainings agree only
to about 1e-3 (Adam turns rounding noise in near-zero gradients into +-lr steps).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import skimage.data
import torch

from protolib.metrics import auroc
from protolib.models import DETECTORS, Detector, FrozenFeatureDetector, make_detector
from protolib.models.base import detector_uses_features

#: a small config per registered detector (every registered name must have one: the
#: contract tests below are parametrised over the registry)
CONFIGS = {
    "knn": {"detector": "knn", "backbone": "resnet18", "weights": "none", "image_size": 32, "k": 2},
    "panda": {
        "detector": "panda",
        "backbone": "resnet18",
        "weights": "none",
        "image_size": 32,
        "steps": 5,
        "batch_size": 16,
    },
    "patchcore": {
        "detector": "patchcore",
        "backbone": "resnet18",
        "weights": "none",
        "image_size": 64,
        "pretrain_embed_dim": 128,
        "target_embed_dim": 128,
    },
    "fae": {
        "detector": "fae",
        "backbone": "resnet18",
        "weights": "none",
        "image_size": 32,
        "steps": 100,
        "hidden_dims": [16, 32],
        "lr": 1e-3,
    },
    "rd": {
        "detector": "rd",
        "backbone": "resnet18",
        "weights": "none",
        "image_size": 64,
        "steps": 50,
        "width": 0.25,
        "bottleneck_blocks": 1,
        "decoder_blocks": [1, 1, 1],
    },
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: the CPU is shared, and two spinning threads are slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def textures(n_train: int = 8, n_test: int = 12, size: int = 48, seed: int = 0):
    """Normal crops of the brick texture; test = normal crops + crops with a dark disc."""
    rng = np.random.default_rng(seed)
    tex = skimage.data.brick()

    def crop() -> np.ndarray:
        y, x = rng.integers(0, tex.shape[0] - size, 2)
        return tex[y : y + size, x : x + size].copy()

    train = np.stack([crop() for _ in range(n_train)])
    normal = np.stack([crop() for _ in range(n_test)])
    defect = np.stack([crop() for _ in range(n_test)])
    yy, xx = np.mgrid[:size, :size]
    for img in defect:
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= (size // 7) ** 2
        img[disc] = (img[disc] * 0.15).astype(np.uint8)
    labels = np.r_[np.zeros(n_test, int), np.ones(n_test, int)]
    return train, np.concatenate([normal, defect]), labels


@pytest.fixture(scope="module")
def data():
    return textures()


def build(name: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)  # the random ("none") backbone weights
    return make_detector({**CONFIGS[name], **overrides}, device="cpu")


@pytest.mark.parametrize("name", ["panda", "patchcore", "fae", "rd"])
def test_trained_detectors_are_fed_images(name):
    assert not detector_uses_features({"detector": name})


@pytest.mark.parametrize("name", DETECTORS.names())
def test_frozen_features_flag_matches_the_detector_class(name):
    """The registry entry's flag (the one answer the workflow, the pipeline and ``protolib rank``
    ask for) is true exactly for the detectors that work on frozen features."""
    assert detector_uses_features({"detector": name}) == isinstance(build(name), FrozenFeatureDetector)


@pytest.mark.parametrize("name", DETECTORS.names())
def test_fits_scores_and_ranks_defects(name, data):
    assert name in CONFIGS, f"detector {name!r} is registered but has no test config in CONFIGS"
    train, test, labels = data
    scores = build(name).fit(train).score(test)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    assert auroc(labels, scores) > 0.5, f"{name}: defects not ranked above normal crops"


@pytest.mark.parametrize("name", [n for n in DETECTORS.names() if not detector_uses_features({"detector": n})])
def test_trained_detector_saves_and_loads(name, data, tmp_path):
    """Detectors trained on images (not frozen features) save their weights and score the same."""
    train, test, _ = data
    det = build(name).fit(train)
    scores = det.score(test)
    det.save(tmp_path / f"{name}.pt")
    loaded = type(det).load(tmp_path / f"{name}.pt", device="cpu")
    np.testing.assert_allclose(loaded.score(test), scores, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["patchcore", "fae", "rd"])
def test_anomaly_maps_have_the_input_size(name, data):
    train, test, _ = data
    short = {} if name == "patchcore" else {"steps": 2}  # patchcore does not train (and takes no steps)
    det = build(name, **short).fit(train[:2])
    maps = det.anomaly_map(test[:3])
    size = CONFIGS[name]["image_size"]
    assert maps.shape == (3, size, size) and np.isfinite(maps).all()


def test_colour_input_equals_grey_repeated(data):
    train, test, _ = data
    det = build("patchcore").fit(train[:2])
    rgb = np.repeat(test[:4, ..., None], 3, axis=-1)
    np.testing.assert_allclose(det.score(rgb), det.score(test[:4]), rtol=1e-6)


# ----------------------------------------------------------------------------- fast paths
def definition(det: Detector, train: np.ndarray, val: np.ndarray) -> np.ndarray:
    """The per-sample matrix by definition: a fresh copy fitted on each training image alone."""
    return np.stack([copy.deepcopy(det).fit(train[i : i + 1]).score(val) for i in range(len(train))])


def test_panda_score_matrix_equals_definition(data):
    train, test, _ = data
    det = build("panda")
    fast = det.score_matrix(train[:4], test[:6])
    np.testing.assert_allclose(fast, Detector.score_matrix(det, train[:4], test[:6]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fast, definition(det, train[:4], test[:6]), rtol=1e-4, atol=1e-6)


def test_patchcore_score_matrix_equals_one_patchcore_per_image(data):
    train, test, _ = data
    det = build("patchcore")
    fast = det.score_matrix(train[:4], test[:6])
    assert fast.shape == (4, 6)
    np.testing.assert_allclose(fast, definition(det, train[:4], test[:6]), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["fae", "rd"])
def test_batched_training_equals_sequential_training(name, data):
    """score_matrix trains the 3 single-image models at once (vmap); the definition trains them
    one after another with an ordinary torch.optim loop. Same seeds -> same models."""
    train, test, _ = data
    det = build(name, steps=4, dtype="float64", parallel_models=8)
    fast = det.score_matrix(train[:3], test[:4])
    slow = definition(det, train[:3], test[:4])
    assert fast.shape == (3, 4) and np.isfinite(fast).all()
    assert np.ptp(fast, axis=0).max() > 0  # the candidates' models really differ
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_batched_training_in_groups_equals_one_group(data):
    train, test, _ = data
    one = build("fae", steps=2, dtype="float64", parallel_models=8).score_matrix(train[:3], test[:3])
    groups = build("fae", steps=2, dtype="float64", parallel_models=2).score_matrix(train[:3], test[:3])
    np.testing.assert_allclose(groups, one, rtol=1e-10)


# ----------------------------------------------------------------------------- PANDA
def test_panda_single_image_is_the_knn_detector(tmp_path, data):
    train, test, _ = data
    import torchvision

    torch.manual_seed(3)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    common = {"backbone": "resnet18", "weights": str(tmp_path / "r18.pth"), "image_size": 32, "k": 2}
    panda = make_detector({"detector": "panda", **common, "steps": 3}, device="cpu")
    knn = make_detector({"detector": "knn", **common}, device="cpu")
    np.testing.assert_allclose(panda.score_matrix(train[:3], test), knn.score_matrix(train[:3], test), rtol=1e-5)
    np.testing.assert_allclose(panda.fit(train[:1]).score(test), knn.fit(train[:1]).score(test), rtol=1e-5)


def test_panda_trains_layer3_and_layer4_only_and_refits_from_psi0(data):
    train, test, _ = data
    det = build("panda", steps=3, lr=0.5, grad_clip=0)
    before = {k: v.clone() for k, v in det.net.state_dict().items()}
    det.fit(train[:4])
    after = det.net.state_dict()
    for key, value in before.items():
        changed = not torch.equal(value, after[key])
        trainable = key.split(".")[0] in ("layer3", "layer4") and "running" not in key and "num_batches" not in key
        if not trainable:
            assert not changed, f"{key} changed"
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("layer4"))
    first = det.score(test)
    det.fit(train[4:8])
    np.testing.assert_allclose(det.fit(train[:4]).score(test), first, rtol=1e-6)


# ----------------------------------------------------------------------------- PatchCore core-set
def test_greedy_coreset_matches_a_plain_loop_and_is_per_bank():
    from protolib.models.patchcore import greedy_coreset

    g = torch.Generator().manual_seed(0)
    banks = torch.randn(3, 40, 16, generator=g, dtype=torch.float64)
    starts = torch.tensor([5, 17, 30])
    batched = greedy_coreset(banks, 7, None, starts)
    for b in range(3):
        x = banks[b].numpy()
        dist = lambda i, x=x: np.linalg.norm(x - x[i], axis=1)
        anchors = np.mean([dist(s) for s in starts.tolist()], axis=0)
        chosen = []
        for _ in range(7):
            i = int(np.argmax(anchors))
            chosen.append(i)
            anchors = np.minimum(anchors, dist(i))
        assert batched[b].tolist() == chosen
        assert greedy_coreset(banks[b : b + 1], 7, None, starts)[0].tolist() == chosen


def test_patchcore_bank_of_one_small_image_keeps_at_least_one_patch():
    det = build("patchcore", image_size=32, coreset_ratio=0.01)  # 4x4 patches -> int(0.16) = 0 -> 1
    det.fit(textures(n_train=1, n_test=1)[0])
    assert det.bank.shape[0] == 1
    assert det.grid == (4, 4)


# ----------------------------------------------------------------------------- SSIM, blur, norm
def test_ssim_map_matches_the_reference_formula_and_is_differentiable():
    import torch.nn.functional as F

    from protolib.models.ssim import gaussian_window, ssim_map

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 12, 12, generator=g, dtype=torch.float64)
    y = torch.rand(2, 3, 12, 12, generator=g, dtype=torch.float64)
    w1 = gaussian_window(11, 1.5, dtype=torch.float64)
    window = (w1[:, None] @ w1[None, :]).expand(3, 1, 11, 11)  # the reference's 2-D depthwise window

    def blur(t):
        return F.conv2d(t, window, padding=5, groups=3)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ref = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    torch.testing.assert_close(ssim_map(x, y), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ssim_map(x, x), torch.ones_like(x))
    xs = x[:1, :1, :6, :6].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: ssim_map(a, y[:1, :1, :6, :6], window_size=5), (xs,))


def test_gaussian_blur_matches_scipy():
    from scipy.ndimage import gaussian_filter

    from protolib.models.ssim import gaussian_blur

    maps = torch.rand(2, 9, 14, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = np.stack([gaussian_filter(m, 4.0) for m in maps.numpy()])  # radius 16 > map size
    np.testing.assert_allclose(gaussian_blur(maps, 4.0).numpy(), ref, atol=1e-12)


def test_batch_stat_norm_behaves_like_torch_batchnorm():
    from protolib.models.vmap_training import BatchStatNorm2d, train_plain

    def net(norm):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), norm).double()

    ours, theirs = net(BatchStatNorm2d(4)), net(torch.nn.BatchNorm2d(4))
    x = torch.randn(5, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def loss(module, batch, noise):
        return (module(batch) ** 3).mean()

    for module in (ours, theirs):
        train_plain(module, loss, lambda step: x[step % 2 :: 2], 4, torch.optim.SGD(module.parameters(), lr=0.1))
        assert not module.training
    torch.testing.assert_close(ours[1].running_mean, theirs[1].running_mean)
    torch.testing.assert_close(ours[1].running_var, theirs[1].running_var)
    torch.testing.assert_close(ours(x), theirs(x))


def test_bad_configs_fail_clearly():
    with pytest.raises(ValueError, match="image_size"):
        build("rd", image_size=48)
    with pytest.raises(ValueError, match="coreset_ratio"):
        build("patchcore", coreset_ratio=0)
    with pytest.raises(ValueError, match="divisible"):
        build("fae", image_size=36)

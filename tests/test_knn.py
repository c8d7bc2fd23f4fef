"""The knn detector: scoring rule, and the per-sample fast path equals its definition."""

import copy

import numpy as np
import pytest

from protolib.data import load_dataset
from protolib.models import Detector, make_detector


@pytest.fixture(scope="module")
def digits():
    return load_dataset({"loader": "digits"})


def test_score_is_sum_of_squared_distances_to_k_nearest():
    det = make_detector({"detector": "knn", "backbone": "pixels", "k": 2}, device="cpu")
    train = np.array([[[0]], [[10]], [[30]]], dtype=np.uint8)
    det.fit(train)
    x = np.array([[[12]]], dtype=np.uint8)
    d = np.array([12.0, 2.0, 18.0]) ** 2  # raw pixel values: exact integer squared distances
    assert det.score(x)[0] == d[1] + d[0]


def test_k_is_capped_by_the_number_of_training_images(digits):
    det = make_detector({"detector": "knn", "backbone": "pixels", "k": 5}, device="cpu").fit(digits.images[:2])
    scores = det.score(digits.images[10:20])
    assert np.isfinite(scores).all() and scores.shape == (10,)


def test_score_matrix_fast_path_equals_one_fit_per_sample(digits):
    det = make_detector({"detector": "knn", "backbone": "pixels", "k": 2}, device="cpu")
    train, val = digits.images[:25], digits.images[100:160]
    fast = det.score_matrix(train, val)
    # the definition: a fresh detector fitted on each training image alone (Detector's default)
    slow = Detector.score_matrix(det, train, val)
    by_hand = np.stack([copy.deepcopy(det).fit(train[i : i + 1]).score(val) for i in range(len(train))])
    assert fast.shape == (25, 60)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast, by_hand, rtol=1e-10, atol=1e-12)


def test_resnet_backbone_fast_path_equals_definition(digits):
    # weights: none (no pretrained weights can be downloaded here); numbers are not meaningful,
    # the equality of the fast path and the definition is.
    cfg = {"detector": "knn", "backbone": "resnet18", "weights": "none", "image_size": 32, "batch_size": 8, "k": 2}
    import torch

    torch.manual_seed(0)
    det = make_detector(cfg, device="cpu")
    train, val = digits.images[:4], digits.images[50:56]
    fast = det.score_matrix(train, val)
    slow = Detector.score_matrix(det, train, val)
    assert fast.shape == (4, 6) and np.isfinite(fast).all()
    np.testing.assert_allclose(fast, slow, rtol=1e-4)  # float32 convs differ by batch size
    assert det.embed(train).shape == (4, 512)


def test_missing_weights_file_names_the_file_and_the_alternatives(tmp_path):
    cfg = {"detector": "knn", "backbone": "resnet18", "weights": str(tmp_path / "nope.pth")}
    with pytest.raises(FileNotFoundError, match="nope.pth.*imagenet"):
        make_detector(cfg, device="cpu")


def test_local_weights_file_is_loaded(tmp_path, digits):
    import torch
    import torchvision

    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    cfg = {"detector": "knn", "backbone": "resnet18", "weights": str(tmp_path / "r18.pth"), "image_size": 32}
    det = make_detector(cfg, device="cpu")
    for name, tensor in reference.state_dict().items():
        if name.startswith("fc."):
            continue
        assert torch.equal(det.embedder.model.state_dict()[name], tensor), name


def test_scoring_many_subsets_on_one_test_set_equals_one_fit_and_score_each(digits):
    """The evaluate route (test set gathered and prepared once) gives each subset the numbers of
    fitting the detector on it alone and scoring the test set, on features and on images."""
    from protolib.models.backbones import make_backbone
    from protolib.scoring import Inputs, fit_and_score_each

    det = make_detector({"detector": "knn", "backbone": "pixels", "k": 2}, device="cpu")
    features = make_backbone({"backbone": "pixels"}, device="cpu")(digits.images)
    subsets = [[0, 5, 9], [3], list(range(20, 60))]
    test_ids = np.arange(100, 400)
    for inputs in (Inputs(images=None, features=features), Inputs(images=digits.images, features=None)):
        each = list(fit_and_score_each(det, inputs, subsets, inputs, test_ids))
        assert len(each) == len(subsets)
        for ids, scores in zip(subsets, each):
            alone = copy.copy(det)
            if inputs.features is not None:
                expected = alone.fit_features(features[ids]).score_features(features[test_ids])
            else:
                expected = alone.fit(digits.images[ids]).score(digits.images[test_ids])
            assert np.array_equal(scores, expected)


def test_random_weights_are_the_same_network_in_every_process():
    """``weights: none`` must not depend on the process's random state: two studies of one config
    (or two jobs sharing a feature cache key) see one network; the caller's stream is untouched."""
    import subprocess
    import sys

    import torch

    from protolib.models.backbones import load_resnet

    torch.manual_seed(123)
    first = load_resnet("resnet18", "none").state_dict()
    after = torch.rand(3)
    torch.manual_seed(123)
    torch.rand(7)  # another state
    second = load_resnet("resnet18", "none").state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(3), after), "loading consumed the caller's random numbers"
    code = (
        "import torch; from protolib.models.backbones import load_resnet; "
        "print(float(load_resnet('resnet18', 'none').conv1.weight.double().sum()))"
    )
    other = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert other == float(first["conv1.weight"].double().sum())

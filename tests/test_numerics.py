"""Numerics of the torch detectors (protolib.models.precision): the ``precision`` setting, the
finiteness check of features, ``deterministic`` runs, images prepared once per stage, and the
CUDA out-of-memory back-off (an OOM injected on the CPU). Sizes are tiny; weights random."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from protolib.checks import InputMismatchError
from protolib.models import make_detector
from protolib.models.backbones import feature_key
from protolib.models.feature_maps import PreparedImages, ResNetFeatureMaps, extract_maps, prepare_images
from protolib.models.precision import AGREEMENT, configure_run
from protolib.models.vmap_training import train_plain

RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, (5, 28, 28), dtype=np.uint8)
COLOUR = RNG.integers(0, 256, (5, 20, 20, 3), dtype=np.uint8)
FAE = {
    "detector": "fae",
    "backbone": "resnet18",
    "image_size": 32,
    "steps": 3,
    "hidden_dims": [8, 16],
    "train_batch_size": 2,
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("images", [GREY, COLOUR], ids=["grey", "colour"])
@pytest.mark.parametrize("resize", [None, 32])
def test_prepared_images_equal_preparing_each_batch(images, resize):
    prepared = PreparedImages(images, 32, resize)
    assert prepared.pixels.shape[1] == (1 if images.ndim == 3 else 3)  # grey kept as one channel
    for pick in (slice(1, 4), np.array([4, 0, 2]), torch.tensor([3, 1])):
        index = pick.numpy() if isinstance(pick, torch.Tensor) else pick
        for norm in (True, False):
            assert torch.equal(
                prepare_images(prepared[pick], 32, resize, norm), prepare_images(images[index], 32, resize, norm)
            )
    # prepared at another size: the originals are prepared again
    assert torch.equal(prepare_images(prepared, 24, resize), prepare_images(images, 24, resize))


@pytest.mark.parametrize(
    "cfg",
    [
        {"detector": "panda", "backbone": "resnet18", "image_size": 32, "steps": 2, "train_batch_size": 2},
        FAE,
        {"detector": "patchcore", "backbone": "resnet18", "image_size": 32},
    ],
    ids=["panda", "fae", "patchcore"],
)
def test_scores_of_prepared_images_are_identical(cfg):
    """Also FAE's training minibatches, which it prepares once per fit."""
    det = make_detector(cfg, device="cpu")
    plain = det.fit(GREY[:3]).score(GREY[3:])
    prepared = det.prepared_images(GREY[3:])
    assert isinstance(prepared, PreparedImages)
    assert np.array_equal(det.fit(GREY[:3]).score(prepared), plain)


def test_precision_is_a_validated_model_setting(tmp_path):
    from protolib.config import ConfigError, validate
    from tests.helpers import study_config

    config = study_config(tmp_path / "results")
    name = next(iter(config["models"]))
    config["models"][name]["precision"] = "fp8"
    with pytest.raises(ConfigError, match=rf"models\.{name}\.precision"):
        validate(config)
    with pytest.raises(ValueError, match="precision must be one of"):
        make_detector({**FAE, "precision": "half"}, device="cpu")


def test_feature_cache_key_names_a_half_precision():
    cfg = {"backbone": "resnet18", "weights": "none", "image_size": 32}
    assert feature_key(cfg) == feature_key({**cfg, "precision": "fp32"})  # existing caches still match
    assert feature_key({**cfg, "precision": "bf16"}) == feature_key(cfg) + "-bf16"


def test_bf16_runs_and_stays_near_fp32():
    """bf16 autocast (also on the CPU): frozen passes and FAE training forward passes."""
    fp32 = make_detector(FAE, device="cpu").fit(GREY[:3]).score(GREY[3:])
    bf16 = make_detector({**FAE, "precision": "bf16"}, device="cpu").fit(GREY[:3]).score(GREY[3:])
    assert np.isfinite(bf16).all()
    assert not np.array_equal(bf16, fp32)  # it did run in another precision
    assert np.allclose(bf16, fp32, rtol=0.1)


def test_non_finite_features_name_the_model_and_layer():
    extractor = ResNetFeatureMaps("resnet18", "none", ["layer1", "layer2"])
    with torch.no_grad():
        extractor.layer2[0].conv1.weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(InputMismatchError, match="resnet18 layer2 features"):
        extract_maps(extractor, GREY, image_size=32, resize=32, imagenet_norm=False, device="cpu")
    det = make_detector({"detector": "knn", "backbone": "resnet18", "image_size": 32}, device="cpu")
    with torch.no_grad():
        det.embedder.model.layer4[0].conv1.weight.fill_(float("nan"))
    with pytest.raises(InputMismatchError, match="resnet18 avgpool features"):
        det.embed(GREY)


def test_deterministic_setting_runs_and_changes_nothing_on_the_cpu():
    before = make_detector(FAE, device="cpu").score_matrix(GREY[:2], GREY[3:])
    try:
        configure_run(deterministic=True, device="cpu")
        assert torch.are_deterministic_algorithms_enabled()
        after = make_detector(FAE, device="cpu").score_matrix(GREY[:2], GREY[3:])
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    assert np.array_equal(before, after)


def test_losses_are_read_once_and_equal_the_per_step_values():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    x = torch.randn(4, 3)
    seen = []

    def loss_fn(module, batch, noise):
        loss = module(batch).pow(2).mean()
        seen.append(float(loss.detach()))
        return loss

    losses = train_plain(net, loss_fn, lambda step: x, 4, torch.optim.SGD(net.parameters(), lr=0.1))
    assert losses == seen and all(isinstance(v, float) for v in losses)


@pytest.mark.parametrize("extractor_bn", ["batch", "imagenet"])
def test_cuda_out_of_memory_halves_the_models_trained_at_once(monkeypatch, caplog, extractor_bn):
    """An OOM injected into the batched training when more than one model trains at once: the
    job goes on with fewer models at once, logs it, and gives the same matrix."""
    import protolib.models.fae as fae_module
    import protolib.models.trained_map as trained_map

    cfg = {**FAE, "extractor_bn": extractor_bn, "dtype": "float64"}
    want = make_detector({**cfg, "parallel_models": 1}, device="cpu").score_matrix(GREY[:3], GREY[3:])
    real = trained_map.train_stacked
    sizes = []

    def tight(template, params, *args, **kwargs):
        n = next(iter(params.values())).shape[0]
        sizes.append(n)
        if n > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return real(template, params, *args, **kwargs)

    monkeypatch.setattr(trained_map, "train_stacked", tight)
    monkeypatch.setattr(fae_module, "train_stacked", tight)
    det = make_detector({**cfg, "parallel_models": 4}, device="cpu")
    with caplog.at_level(logging.WARNING):
        got = det.score_matrix(GREY[:3], GREY[3:])
    assert sizes[:3] == [3, 2, 1] and det.parallel_models == 1
    assert "CUDA out of memory" in caplog.text and "parallel_models = 2" in caplog.text
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_out_of_memory_with_one_model_is_raised(monkeypatch):
    import protolib.models.trained_map as trained_map

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    monkeypatch.setattr(trained_map, "train_stacked", oom)
    det = make_detector({**FAE, "extractor_bn": "imagenet", "parallel_models": 1}, device="cpu")
    with pytest.raises(torch.cuda.OutOfMemoryError):
        det.score_matrix(GREY[:2], GREY[3:])


def test_agreement_table_covers_every_detector():
    from protolib.models import DETECTORS

    kinds = {name.split("_")[0] for name in AGREEMENT}
    assert set(DETECTORS.names()) <= kinds
    assert {a.kind for a in AGREEMENT.values()} <= {"exact", "frozen", "trained"}


# ----------------------------------------------------------------------------- acceptance script
def _acceptance():
    import importlib.util
    import sys

    from tests.helpers import REPO

    spec = importlib.util.spec_from_file_location("gpu_acceptance", REPO / "benchmarks" / "gpu_acceptance.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gpu_acceptance_tiny_on_the_cpu_passes():
    """The CI form of benchmarks/gpu_acceptance.py: every detector on the CPU against the CPU."""
    import subprocess
    import sys

    from tests.helpers import REPO

    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_acceptance.py"), "--tiny", "--device", "cpu"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=1800,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for case in (
        "knn_pixels",
        "knn_resnet",
        "panda_single",
        "patchcore",
        "panda",
        "fae_batch",
        "fae_imagenet",
        "rd",
        "fae_batch vmap",
        "rd vmap",
    ):
        assert f"\n{case} " in out.stdout, f"{case} missing from:\n{out.stdout}"
    assert "resolve_device('auto')" in out.stdout and "all checks passed" in out.stdout


def test_gpu_acceptance_fails_on_a_nan_feature_or_a_mutated_tolerance(monkeypatch, capsys):
    from protolib.models.precision import Agreement

    script = _acceptance()
    argv = ["--tiny", "--device", "cpu", "--cases", "knn_resnet"]
    assert script.main(argv) == 0
    assert script.main([*argv, "--inject-nan"]) == 1
    assert "FAIL InputMismatchError: resnet18 avgpool features" in capsys.readouterr().out
    monkeypatch.setitem(script.AGREEMENT, "knn_resnet", Agreement("frozen", rtol=-1.0))
    assert script.main(argv) == 1
    assert "FAIL max rel diff" in capsys.readouterr().out

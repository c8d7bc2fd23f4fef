"""The model of a ``protolib rank`` run: its config block, the detector, the device and the
frozen embedding that typicality is measured in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from protolib.config import model_block_problems
from protolib.device import DeviceError
from protolib.models import make_backbone, make_detector
from protolib.models.backbones import WeightsUnavailableError
from protolib.models.backbones import resolve_device as resolve
from protolib.rank.memory import check_image_size
from protolib.rank.options import RankError, RankOptions

#: the paper's backbone per model, used when ``--weights`` is given without ``--backbone``
PAPER_BACKBONES = {"knn": "resnet152", "panda": "resnet152", "patchcore": "wide_resnet50_2", "fae": "resnet18"}
PIXELS_IMAGE_SIZE = 64
NETWORK_IMAGE_SIZE = 224
#: the paper's input size where it is not the ResNet default 224
PAPER_IMAGE_SIZES = {"fae": 128}
#: the model-block keys that have an option of their own (``--set`` refuses them)
OWN_OPTIONS = {
    "detector": "--model",
    "backbone": "--backbone",
    "weights": "--weights",
    "image_size": "--image-size",
    "batch_size": "--batch-size",
}


def model_config(
    model: str,
    backbone: str | None = None,
    weights: str | None = None,
    image_size: int | None = None,
    batch_size: int = 64,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``models.<name>`` block the CLI options describe (defaults documented in :mod:`protolib.rank`)."""
    if backbone is None:
        backbone = "pixels" if model == "knn" and weights is None else PAPER_BACKBONES.get(model, "resnet18")
    if image_size is None:
        image_size = PIXELS_IMAGE_SIZE if backbone == "pixels" else PAPER_IMAGE_SIZES.get(model, NETWORK_IMAGE_SIZE)
    cfg: dict[str, Any] = {
        "detector": model,
        "backbone": backbone,
        "weights": weights if weights is not None else "none",
        "image_size": int(image_size),
        "batch_size": int(batch_size),
    }
    cfg.update(options or {})
    return cfg


def checked_model_config(opts: RankOptions) -> dict[str, Any]:
    """:func:`model_config` of the options, checked as the study checks a ``models.<name>`` block
    (:func:`protolib.config.model_block_problems`: types, ranges, the detector's settings, the
    backbone and the weights file), each problem naming the option that gave the key."""
    own = [key for key in opts.model_options or {} if key in OWN_OPTIONS]
    if own:
        raise RankError(f"--set {own[0]}: use {OWN_OPTIONS[own[0]]} (--set gives the model's other settings)")
    size = opts.image_size
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise RankError(f"--image-size must be a positive integer, got {size!r}")
    cfg = model_config(opts.model, opts.backbone, opts.weights, size, opts.batch_size, opts.model_options)
    check_image_size(cfg["image_size"])
    problems = model_block_problems("rank", cfg)
    if problems:
        raise RankError("; ".join(_by_option(problem) for problem in problems))
    return cfg


def _by_option(problem: str) -> str:
    """``models.rank.k: ...`` -> ``--set k: ...``; a key with its own option is named by it."""
    where, _, message = problem.removeprefix("models.rank.").partition(": ")
    key, dot, rest = where.partition(".")
    return f"{OWN_OPTIONS.get(key, f'--set {key}')}{dot}{rest}: {message}"


def resolve_device(device: str) -> str:
    """``auto`` -> cuda or cpu; a CUDA device that torch cannot see is the user's error."""
    # here: torch (~2 s) after the inputs are checked: input errors report without it
    import torch

    try:
        device = resolve(device)
    except DeviceError as err:
        raise RankError(f"--device {device}: {err}") from err
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RankError(f"--device {device}: no CUDA GPU is visible to torch (use --device cpu or auto)")
    return device


def note_weights(model_cfg: dict[str, Any], weights: str | None, log: Callable[[str], None]) -> None:
    """Say when ``--weights`` is ignored, or when a network's features are random."""
    if model_cfg["backbone"] == "pixels" and weights is not None:
        log(f"note: --weights {weights} is ignored: the pixels backbone has no weights")
    elif model_cfg["backbone"] != "pixels" and model_cfg["weights"] == "none":
        log(
            f"note: {model_cfg['backbone']} has random weights (--weights none): its features are not "
            "ImageNet features; pass --weights imagenet or a state_dict file for meaningful rankings"
        )


def _user_error(what: str, err: Exception) -> RankError:
    if isinstance(err, WeightsUnavailableError):
        return RankError(f"--weights imagenet: {err}")
    if isinstance(err, KeyError):
        return RankError(str(err.args[0]) if err.args else str(err))
    return RankError(f"cannot build {what}: {err}")


def build_detector(model_cfg: dict[str, Any], device: str) -> Any:

    try:
        return make_detector(model_cfg, device=device)
    except (KeyError, FileNotFoundError, RuntimeError, ValueError) as err:
        raise _user_error(f"model {model_cfg['detector']!r}", err) from err


def embedder(detector: Any, frozen: bool, model_cfg: dict[str, Any], device: str) -> Callable[[np.ndarray], np.ndarray]:
    """The frozen embedding for typicality: a frozen-feature detector's own, else the pooled
    features of the model's backbone (since the detector's own representation is trained or patch-wise)."""

    if frozen:
        return detector.embed
    try:
        return make_backbone(model_cfg, device=device)
    except (KeyError, FileNotFoundError, RuntimeError, ValueError) as err:
        raise _user_error(f"backbone {model_cfg.get('backbone')!r}", err) from err


def pca_components(requested: int, shape: tuple[int, ...]) -> int:
    """``--pca`` as used: at most min(images, feature dimensions), the most PCA finds (the
    summary records this number, and the run says when it is less than asked)."""
    return min(requested, *shape)


def pca(features: np.ndarray, components: int, seed: int) -> np.ndarray:
    # here: scikit-learn only under --pca
    from sklearn.decomposition import PCA

    return PCA(n_components=pca_components(components, features.shape), random_state=seed).fit_transform(features)

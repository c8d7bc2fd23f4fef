"""Frozen feature extractors: raw pixels, or a torchvision ResNet's pooled features.

Weights: ``imagenet`` uses torchvision's own download and cache (``~/.cache/torch``), a path
loads a local state_dict, ``none`` keeps random initialisation (tests; numbers made so are
labelled as such). torch is imported lazily so that the pixel path stays light.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from protolib.device import GPU_DEVICE_FILES, resolve_device  # noqa: F401  (models import them from here)
from protolib.models.precision import check_features, check_precision, compute_context
from protolib.registry import Registry

BackboneFactory = Callable[..., Callable[[np.ndarray], np.ndarray]]
BACKBONES: Registry[BackboneFactory] = Registry("backbone")

#: the model-block keys that name the frozen backbone embedding every image once (the feature
#: cache: gmm and typical select on it, frozen-feature detectors score on it), and their defaults
FEATURE_DEFAULTS: dict[str, Any] = {
    "backbone": "pixels",
    "weights": "none",
    "image_size": 224,
    "batch_size": 64,
    "precision": "fp32",
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def backbone_names() -> list[str]:
    return BACKBONES.names()


def network_backbones() -> list[str]:
    """The backbones that are networks with layers (what panda, patchcore, fae and rd read)."""
    return list(_TORCHVISION_RESNETS)


#: the seed of a ``weights: none`` network's random initialisation
RANDOM_INIT_SEED = 0


def feature_key(model_cfg: dict[str, Any]) -> str:
    """A file-name-safe key of everything that determines the features (the cache key)."""
    backbone = model_cfg.get("backbone", FEATURE_DEFAULTS["backbone"])
    if backbone == "pixels":
        return "pixels-raw"  # 0..255 (caches of the former [0, 1] scaling are not reused)
    weights = model_cfg.get("weights", FEATURE_DEFAULTS["weights"])
    if weights == "none":  # the seeded random network (caches of unseeded ones are not reused)
        weights = f"none{RANDOM_INIT_SEED}"
    elif weights != "imagenet":
        weights = "file-" + hashlib.sha256(str(Path(weights).expanduser().resolve()).encode()).hexdigest()[:10]
    size = model_cfg.get("image_size", FEATURE_DEFAULTS["image_size"])
    precision = model_cfg.get("precision", FEATURE_DEFAULTS["precision"])
    return f"{backbone}-{weights}-{size}" + ("" if precision == "fp32" else f"-{precision}")


@BACKBONES.register("pixels")
def pixels(model_cfg: dict[str, Any] | None = None, device: str = "auto") -> Callable[[np.ndarray], np.ndarray]:
    """The raw pixel values 0..255, unscaled: integers, so squared distances between them are
    exact integers and tied distances stay tied (scaling to [0, 1] rounds them apart)."""

    def embed(images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1).astype(np.float32)

    return embed


_TORCHVISION_RESNETS = {
    "resnet18": "ResNet18_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet152": "ResNet152_Weights",
    "wide_resnet50_2": "Wide_ResNet50_2_Weights",
}


class WeightsUnavailableError(RuntimeError):
    """ImageNet weights that are neither in torch's hub cache nor downloadable (offline)."""


def load_resnet(name: str, weights: str) -> Any:
    """A torchvision ResNet with the weights config asks for; a clear error if they are missing.

    ``none`` is a random initialisation drawn with the CPU generator seeded to
    ``RANDOM_INIT_SEED`` (the network is built on the CPU) and restored afterwards: the same
    network in every process and run, and the caller's random streams left as they were."""
    # here: torch (~2 s) only for network backbones; pixels jobs skip it
    import torch
    import torchvision

    builder = getattr(torchvision.models, name)
    if weights == "none":
        with torch.random.fork_rng(devices=[]):  # saves and restores the CPU generator
            torch.default_generator.manual_seed(RANDOM_INIT_SEED)  # not torch.manual_seed: no GPU reseed
            return builder(weights=None)
    if weights == "imagenet":
        enum = getattr(torchvision.models, _TORCHVISION_RESNETS[name]).IMAGENET1K_V1
        try:
            return builder(weights=enum)
        except Exception as err:  # network or cache failure
            cache = Path(torch.hub.get_dir()) / "checkpoints"
            raise WeightsUnavailableError(
                f"could not get ImageNet weights for {name} ({err}). Either run once on a machine "
                f"with the network (torchvision caches {enum.url} as {cache / enum.url.rsplit('/', 1)[-1]}), "
                "or download that file yourself and put it there, or set the weights to its path"
            ) from err
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file {str(path)!r} not found; set 'weights' to an existing state_dict file, "
            "or to 'imagenet' for torchvision's download/cache"
        )
    state = read_state_dict(path, name)
    model = builder(weights=None)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: not a {name} state_dict ({' '.join(str(err).split())})") from err
    return model


def read_state_dict(path: str | Path, name: str | None = None) -> dict[str, Any]:
    """A weights file, read with torch's safe loader (``weights_only``): its state_dict (the
    ``state_dict`` entry of a checkpoint), checked against the ResNet ``name`` when given (names
    and shapes). A file that is not one is a ValueError naming it; never torch's advice to load
    it unsafely."""

    # here: torch (~2 s) only for network backbones; pixels jobs skip it
    import torch

    try:
        state = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, ImportError) as err:
        text = str(err).strip() or type(err).__name__
        detail = (text.split("WeightsUnpickler error:", 1)[-1].strip() or text).splitlines()[0][:120]
        reason = (
            "it holds Python objects besides tensors, which torch's safe loader refuses"
            if "Unsupported global" in detail
            else f"torch cannot read it: {detail}"
        )
        raise ValueError(
            f"{path}: not a PyTorch state_dict file ({reason}); save the network's state_dict() with torch.save"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{path}: not a state_dict (a mapping of parameter names to tensors); save the network's "
            "state_dict() with torch.save"
        )
    if name in _TORCHVISION_RESNETS:
        problem = _state_dict_mismatch(state, name)
        if problem:
            raise ValueError(f"{path}: not a {name} state_dict ({problem})")
    return state


def _state_dict_mismatch(state: dict[str, Any], name: str) -> str | None:
    """How a state_dict differs from torchvision's ``name`` (built on the meta device: no memory)."""
    # here: torch (~2 s) only for network backbones; pixels jobs skip it
    import torch
    import torchvision

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in getattr(torchvision.models, name)(weights=None).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    parts = [
        f"{what} {keys[:3]}{' ...' if len(keys) > 3 else ''}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("other shapes for", shapes))
        if keys
    ]
    return "; ".join(parts) or None


def weights_path_problem(weights: str) -> str | None:
    """Why a ``weights`` value naming a file names none (missing, or a folder); None for
    ``imagenet``, ``none`` and an existing file."""
    if weights in ("none", "imagenet"):
        return None
    path = Path(weights).expanduser()
    if path.is_dir():
        return f"{weights!r} is a folder, not a state_dict file; name the weights file in it"
    if not path.is_file():
        return f"file {weights!r} not found"
    return None


def weights_problem(model_cfg: dict[str, Any]) -> str | None:
    """Whether a model's ``weights`` file can be used for its backbone (checked with the config,
    before any job: a file that is not a state_dict otherwise fails the first GPU job)."""
    weights = model_cfg.get("weights", FEATURE_DEFAULTS["weights"])
    backbone = model_cfg.get("backbone", FEATURE_DEFAULTS["backbone"])
    if weights in ("none", "imagenet") or backbone == "pixels":
        return None
    path = Path(weights).expanduser()
    problem = weights_path_problem(weights)
    if problem:
        return problem
    try:
        read_state_dict(path, backbone if backbone in _TORCHVISION_RESNETS else None)
    except ValueError as err:
        return str(err)
    return None


def to_tensor_batch(images: np.ndarray, image_size: int, resize: int | None = None) -> Any:
    """uint8 (N,H,W[,C]) -> normalised float (N,3,S,S): grey to 3 channels, resize, centre crop."""
    # here: torch (~2 s) only for network backbones; pixels jobs skip it
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    x = x.unsqueeze(1).expand(-1, 3, -1, -1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    resize = resize or int(round(image_size * 256 / 224))
    x = F.interpolate(x, size=(resize, resize), mode="bilinear", align_corners=False, antialias=True)
    off = (resize - image_size) // 2
    x = x[:, :, off : off + image_size, off : off + image_size]
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


class ResNetPooled:
    """Global-average-pooled features of a frozen ResNet (2048-d for ResNet50/152)."""

    def __init__(
        self, name: str, weights: str, image_size: int, batch_size: int, device: str, precision: str = "fp32"
    ) -> None:
        # here: torch (~2 s) only for network backbones; pixels jobs skip it
        import torch

        self.name = name
        self.precision = check_precision(precision, name)
        self.device = resolve_device(device)
        model = load_resnet(name, weights)
        model.fc = torch.nn.Identity()
        self.model = model.eval().to(self.device)
        self.image_size = image_size
        self.batch_size = batch_size
        #: the batch bar: True always, False never, None only on a terminal (``protolib rank -q``: False)
        self.progress: bool | None = True

    def __call__(self, images: np.ndarray) -> np.ndarray:
        # here: torch (~2 s) only for network backbones; pixels jobs skip it
        import torch

        out = []
        with torch.inference_mode():
            from tqdm.auto import tqdm  # here: a job that embeds nothing does not import it (0.1 s)

            disable = None if self.progress is None else not self.progress
            for start in tqdm(range(0, len(images), self.batch_size), desc="embedding", leave=False, disable=disable):
                batch = to_tensor_batch(images[start : start + self.batch_size], self.image_size)
                batch = batch.to(self.device).to(memory_format=torch.channels_last)
                with compute_context(self.device, self.precision):
                    feats = self.model(batch)
                out.append(feats.float().cpu().numpy())
        feats = np.concatenate(out) if out else np.empty((0, 0), dtype=np.float32)
        check_features(feats, self.name, "avgpool")
        return feats


def _resnet_factory(name: str) -> BackboneFactory:
    def factory(model_cfg: dict[str, Any] | None = None, device: str = "auto") -> ResNetPooled:
        cfg = {**FEATURE_DEFAULTS, **(model_cfg or {})}
        return ResNetPooled(
            name,
            weights=cfg["weights"],
            image_size=cfg["image_size"],
            batch_size=cfg["batch_size"],
            device=device,
            precision=cfg["precision"],
        )

    return factory


for _name in _TORCHVISION_RESNETS:
    BACKBONES.register(_name)(_resnet_factory(_name))


def make_backbone(model_cfg: dict[str, Any], device: str = "auto") -> Callable[[np.ndarray], np.ndarray]:
    return BACKBONES.get(model_cfg.get("backbone", FEATURE_DEFAULTS["backbone"]))(model_cfg, device=device)

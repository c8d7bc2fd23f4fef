"""Shared pieces of the image-based detectors: input tensors (prepared once per stage:
``PreparedImages``), frozen multi-layer ResNet feature maps, and saving a fitted detector.

Inputs are the pipeline's uint8 images, (N, H, W) grey or (N, H, W, C) colour. Grey images are
repeated to three channels. ``prepare_images`` either resizes to ``resize`` and centre-crops
``image_size`` (the PANDA / PatchCore transform: resize 256, crop 224) or, with
``resize == image_size``, simply resizes (FAE, RD).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from protolib.models.backbones import IMAGENET_MEAN, IMAGENET_STD, load_resnet
from protolib.models.precision import FiniteFlags, compute_context

RESNET_LAYERS = ("layer1", "layer2", "layer3", "layer4")
#: the layers ``ResNetFeatureMaps`` can return: ``layer0`` is the stem's output (conv1, bn1, relu,
#: maxpool; the FAE references' name for it), then the four residual stages
FEATURE_LAYERS = ("layer0", *RESNET_LAYERS)


def prepare_images(
    images: np.ndarray | PreparedImages,
    image_size: int,
    resize: int | None = None,
    imagenet_norm: bool = True,
    center: bool = False,
) -> torch.Tensor:
    """uint8 (N,H,W[,C]) -> float (N,3,S,S) on the CPU: grey to 3 channels, resize, centre crop,
    then ImageNet normalisation (``imagenet_norm``), or (``center``) ``(x - 0.5) * 2``, values in
    [-1, 1] as the FAE references feed their extractor, else values in [0, 1]. ``resize`` None:
    S * 256 / 224. Images prepared once (:class:`PreparedImages`, same size and crop) are only
    normalised."""
    if imagenet_norm and center:
        raise ValueError("prepare_images: imagenet_norm and center are alternatives; choose one")
    if isinstance(images, PreparedImages) and images.matches(image_size, resize):
        return _normalise(images.pixels.expand(-1, 3, -1, -1), imagenet_norm, center)
    if isinstance(images, PreparedImages):
        images = images.images
    return _normalise(_resized(images, image_size, resize).expand(-1, 3, -1, -1), imagenet_norm, center)


def _resized(images: np.ndarray, image_size: int, resize: int | None) -> torch.Tensor:
    """uint8 (N,H,W[,C]) -> float (N,C,S,S) in [0, 1], C = 1 (grey) or 3, resized and cropped."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(255.0)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4:
        x = x.permute(0, 3, 1, 2)
    else:
        raise ValueError(f"images must be (N,H,W) or (N,H,W,C) uint8, got shape {tuple(images.shape)}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got {x.shape[1]}")
    resize = resize or int(round(image_size * 256 / 224))
    if x.shape[-2:] != (resize, resize):  # per channel: a grey image is resized once, not 3 times
        x = F.interpolate(x, size=(resize, resize), mode="bilinear", align_corners=False, antialias=True)
    off = (resize - image_size) // 2
    return x[:, :, off : off + image_size, off : off + image_size].contiguous()


def _normalise(x: torch.Tensor, imagenet_norm: bool, center: bool = False) -> torch.Tensor:
    if imagenet_norm:
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        x = (x - mean) / std
    elif center:
        x = (x - 0.5) * 2
    return x.contiguous()


#: the largest prepared test/val set kept in memory (bytes); a larger one is prepared per batch
PREPARED_LIMIT_BYTES = 4 * 2**30


class PreparedImages:
    """Images decoded, resized and cropped once (float32 in [0, 1], one channel for grey images),
    for a stage that scores the same images under many fits: every fit then only normalises them.
    Indexing gives a PreparedImages of the selected images; ``images`` keeps the uint8 originals
    (for a detector that prepares them at another size)."""

    def __init__(
        self, images: np.ndarray, image_size: int, resize: int | None, pixels: torch.Tensor | None = None
    ) -> None:
        self.images, self.image_size, self.resize = images, int(image_size), resize
        self.pixels = _resized(images, image_size, resize) if pixels is None else pixels

    @classmethod
    def maybe(cls, images: np.ndarray, image_size: int, resize: int | None) -> np.ndarray | PreparedImages:
        """Prepared, unless the prepared set would exceed :data:`PREPARED_LIMIT_BYTES`."""
        channels = 3 if images.ndim == 4 and images.shape[-1] == 3 else 1
        if len(images) * channels * image_size**2 * 4 > PREPARED_LIMIT_BYTES:
            return images
        return cls(images, image_size, resize)

    def matches(self, image_size: int, resize: int | None) -> bool:
        return (self.image_size, self.resize) == (int(image_size), resize)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Any) -> PreparedImages:
        index = index.numpy() if isinstance(index, torch.Tensor) else index
        pick = index if isinstance(index, slice) else torch.from_numpy(np.asarray(index))
        return PreparedImages(self.images[index], self.image_size, self.resize, self.pixels[pick])


def batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


class ResNetFeatureMaps(nn.Module):
    """The named layers' outputs of a frozen torchvision ResNet (eval mode, no gradients).

    Only the stem and the layers up to the deepest requested one are kept. ``layer0`` is the
    stem's output (:data:`FEATURE_LAYERS`). ``channels`` lists each requested layer's channel
    count, ``strides`` its stride w.r.t. the input.
    """

    def __init__(self, name: str, weights: str, layers: Sequence[str]) -> None:
        super().__init__()
        layers = tuple(layers)
        bad = [layer for layer in layers if layer not in FEATURE_LAYERS]
        if bad or not layers:
            raise ValueError(f"feature layers must be among {FEATURE_LAYERS}, got {list(layers)}")
        net = load_resnet(name, weights)
        self.name = name
        self.layers = tuple(sorted(layers, key=FEATURE_LAYERS.index))
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        deepest = FEATURE_LAYERS.index(self.layers[-1])
        for layer in FEATURE_LAYERS[1 : deepest + 1]:
            self.add_module(layer, getattr(net, layer))
        self.block_type = type(net.layer1[0]).__name__  # "BasicBlock" or "Bottleneck"
        self.base_width = int(getattr(net, "base_width", 64))
        self.requires_grad_(False)
        self.eval()
        self.channels = [self._out_channels(layer) for layer in self.layers]
        self.strides = [4 * 2 ** max(0, FEATURE_LAYERS.index(layer) - 1) for layer in self.layers]

    def _out_channels(self, layer: str) -> int:
        if layer == "layer0":
            return int(self.stem[1].num_features)
        last = getattr(self, layer)[-1]
        bn = last.bn3 if hasattr(last, "bn3") else last.bn2
        return int(bn.num_features)

    def train(self, mode: bool = True) -> ResNetFeatureMaps:
        return super().train(False)  # always frozen: BatchNorm keeps its running statistics

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        x = self.stem(x)
        if "layer0" in self.layers:
            out.append(x)
        for layer in RESNET_LAYERS:
            if not hasattr(self, layer):
                break
            x = getattr(self, layer)(x)
            if layer in self.layers:
                out.append(x)
        return out


def bn_buffers(extractor: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the BatchNorm running statistics of a module (its ``state`` for ``extract_maps``)."""
    return {
        name: buf.detach().clone()
        for name, buf in extractor.named_buffers()
        if name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")
    }


@contextlib.contextmanager
def batch_statistics(module: nn.Module, momentum: float | None = None) -> Iterator[None]:
    """BatchNorm layers of ``module`` in train mode for the block: they normalise with the batch's
    statistics and update their running statistics (with ``momentum`` if given)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.momentum) for m in norms]
    for m in norms:
        m.training = True
        if momentum is not None:
            m.momentum = momentum
    try:
        yield
    finally:
        for m, (training, mom) in zip(norms, saved):
            m.training, m.momentum = training, mom


def extract_maps(
    extractor: ResNetFeatureMaps,
    images: np.ndarray | PreparedImages,
    *,
    image_size: int,
    resize: int | None,
    imagenet_norm: bool,
    device: str,
    batch_size: int = 32,
    center: bool = False,
    post: Any = None,
    dtype: torch.dtype = torch.float32,
    state: dict[str, torch.Tensor] | None = None,
    precision: str = "fp32",
    check: bool = True,
) -> list[torch.Tensor]:
    """Frozen feature maps of all images, ``dtype`` on ``device``: one tensor per layer, or what
    ``post(maps)`` returns per batch (a tensor or list of tensors), concatenated.

    ``center``: inputs in [-1, 1] (``prepare_images``). ``state``: BatchNorm statistics
    (``bn_buffers``) used in place of the extractor's own; under ``batch_statistics`` they are the
    ones updated. Runs without gradients, channels_last, at ``precision``
    (:func:`~protolib.models.precision.compute_context`). The extractor must already be in
    ``dtype``. ``check``: every layer's maps must be finite (read once, at the end).
    """
    outs: list[list[torch.Tensor]] = []
    flags = FiniteFlags()
    with torch.no_grad():
        for sl in batches(len(images), batch_size):
            x = prepare_images(images[sl], image_size, resize, imagenet_norm, center)
            x = x.to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
            with compute_context(device, precision):
                maps = extractor(x) if state is None else torch.func.functional_call(extractor, state, (x,))
            maps = [m.to(dtype).contiguous() for m in maps]
            if check:
                for layer, m in zip(extractor.layers, maps):
                    flags.add(extractor.name, layer, m)
            if post is not None:
                maps = post(maps)
                maps = [maps] if isinstance(maps, torch.Tensor) else list(maps)
            outs.append(maps)
    if not outs:
        raise ValueError("no images to embed")
    flags.check()
    return [torch.cat([o[i] for o in outs]).clone() for i in range(len(outs[0]))]


def seeded(seed: int) -> contextlib.AbstractContextManager:
    """Run a block (module construction) with the CPU RNG seeded, restoring the RNG after."""

    @contextlib.contextmanager
    def ctx():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield

    return ctx()


def save_detector(path: str | Path, name: str, cfg: dict[str, Any], state: dict[str, Any]) -> None:
    """Write {detector, config, state} with torch.save (tensors moved to the CPU), atomically."""

    def cpu(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return obj.detach().cpu()
        if isinstance(obj, dict):
            return {k: cpu(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(cpu(v) for v in obj)
        return obj

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"detector": name, "config": dict(cfg), "state": cpu(state)}, tmp)
    tmp.replace(path)


def read_saved(path: str | Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("detector") != name:
        found = blob.get("detector") if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{path}: not a saved {name!r} detector (found {found!r})")
    return blob["config"], blob["state"]

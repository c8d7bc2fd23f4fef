"""``rd``: Reverse Distillation from a one-class embedding (Deng & Li; reference hq-deng/RD4AD, and
iolag/UPD_study whose hyper-parameters the paper says it used).

- Teacher: a frozen ResNet (``backbone``, wide_resnet50_2), outputs of layer1-3 (f1, f2, f3).
  Input: the image resized to ``image_size`` (128, UPD_study), values in [0, 1] without ImageNet
  normalisation (UPD_study; ``imagenet_norm: true`` is RD4AD's).
- Student, trained: the one-class bottleneck of the reference (``BN_layer``): multi-scale feature
  fusion (f1 -> two 3x3 stride-2 convs, f2 -> one, each + norm + ReLU, concatenated with f3) and a
  one-class-embedding ResNet layer (``bottleneck_blocks`` blocks, the first with stride 2, to
  2 x c3 channels); then the mirrored decoder de_layer3 -> de_layer2 -> de_layer1 (ResNet layers
  whose first block upsamples with 2x2 transposed convs), giving maps with the encoder's channel
  counts (c3, c2, c1). Blocks are bottleneck blocks (width x ``base_width``/64) for bottleneck
  encoders, basic blocks for ResNet18/34, as in the reference. Default block counts are the
  reference's (bottleneck 3 / 2; decoder [3, 4, 6] / [2, 2, 2] for de_layer3..1); both are
  configurable (``bottleneck_blocks``, ``decoder_blocks``), and ``width`` (1.0) scales the
  student's inner channels (block widths and the embedding's 2 x c3) to make it smaller while the
  decoder outputs keep the encoder's channel counts.
- Loss: sum over the 3 scales of mean over the batch of 1 - cosine similarity between the
  flattened encoder and decoder maps (the reference's ``loss_fucntion``; ``cosine: pixel`` uses
  the per-position cosine averaged over positions instead).
- Adam, lr 0.005, betas (0.5, 0.999), ``train_batch_size`` 4 (UPD_study ``RDtrainer.py``; RD4AD
  uses 16), ``steps`` 500 (the paper does not state RD's steps; UPD_study trains 10 000 steps on
  full data sets).
- Anomaly map: per scale 1 - cosine similarity along channels, upsampled (bilinear,
  align_corners=True) to ``image_size`` and summed; no smoothing (``map_sigma`` 0, UPD_study's
  default; RD4AD's evaluation blurs with sigma 4); image score = the mean of the map
  (``score_reduce: mean``, UPD_study's ``val_step`` for chest X-rays, the paper's RD setting;
  RD4AD and UPD_study's RF modality take the max, its MRI modality the max inside the brain).

Against the references (hq-deng/RD4AD; iolag/UPD_study ``UPD_study/models/RD/``, whose
settings the paper uses) and the paper; * = deviation from UPD_study:

==============  =====================================  ==========================================  ==========
setting         protolib default                       reference (file)                            paper
==============  =====================================  ==========================================  ==========
network         WRN50-2 encoder, OCBE, mirror decoder  ``resnet.py``, ``de_resnet.py``             -
input           128 px, [0, 1] (no ImageNet norm)      ``RDtrainer.py`` (UPD_study)                as [23]
optimiser       Adam 5e-3, betas (0.5, 0.999), bs 4    ``RDtrainer.py``                            as [23]
training        * 500 steps                            ``RDtrainer.py``: 10 000 steps               -
loss            1 - cos of flattened maps, 3 scales    ``RDtrainer.py`` loss_fucntion              -
map, score      sum of 1 - cos maps, no blur, mean     ``RDtrainer.py`` get_anomaly_map, val_step  as [23]
precision       fp32 (bf16/fp16 opt-in: *)             float32                                     -
==============  =====================================  ==========================================  ==========

Deviations: the reference's ReLUs are in-place (here not, for autograd under vmap); BatchNorm in
the student is the vmap-safe re-implementation (same behaviour) of ``vmap_training``;
``norm: group|instance|none`` are alternatives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from protolib.models.base import DETECTORS
from protolib.models.feature_maps import ResNetFeatureMaps, extract_maps, seeded
from protolib.models.ssim import gaussian_blur
from protolib.models.trained_map import Features, TrainedMapDetector
from protolib.models.vmap_training import adam, make_norm


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def _deconv2x2(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 2, stride=2, bias=False)


class ResBlock(nn.Module):
    """A ResNet block (``basic`` or ``bottleneck``) from ``cin`` to ``cout`` channels through ``mid``
    inner channels, keeping the grid (``same``), halving it (``down``, stride-2 conv) or doubling
    it (``up``, 2x2 transposed conv), with a projection shortcut when the shape changes."""

    def __init__(self, kind: str, cin: int, cout: int, mid: int, mode: str, norm: str) -> None:
        super().__init__()
        stride = 2 if mode == "down" else 1
        if kind == "basic":
            first = _deconv2x2(cin, mid) if mode == "up" else _conv3x3(cin, mid, stride)
            self.body = nn.ModuleList([first, make_norm(norm, mid), _conv3x3(mid, cout), make_norm(norm, cout)])
        elif kind == "bottleneck":
            middle = _deconv2x2(mid, mid) if mode == "up" else _conv3x3(mid, mid, stride)
            self.body = nn.ModuleList(
                [
                    _conv1x1(cin, mid),
                    make_norm(norm, mid),
                    middle,
                    make_norm(norm, mid),
                    _conv1x1(mid, cout),
                    make_norm(norm, cout),
                ]
            )
        else:
            raise ValueError(f"unknown block kind {kind!r}")
        self.shortcut: nn.Module | None = None
        if mode != "same" or cin != cout:
            proj = _deconv2x2(cin, cout) if mode == "up" else _conv1x1(cin, cout, stride)
            self.shortcut = nn.Sequential(proj, make_norm(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        layers = list(self.body)
        for i in range(0, len(layers), 2):
            out = layers[i + 1](layers[i](out))
            if i + 2 < len(layers):
                out = F.relu(out)
        identity = self.shortcut(x) if self.shortcut is not None else x
        return F.relu(out + identity)


def _layer(
    kind: str, cin: int, cout: int, blocks: int, mode: str, base_width: int, norm: str, width: float
) -> nn.Sequential:
    """A ResNet layer as the reference builds it: planes = cout / expansion; inner channels
    planes * base_width / 64 (bottleneck) or planes (basic), scaled by ``width``."""
    expansion = 4 if kind == "bottleneck" else 1
    planes = cout // expansion
    mid = planes * base_width // 64 if kind == "bottleneck" else planes
    mid = max(4, int(round(mid * width)))
    first = ResBlock(kind, cin, cout, mid, mode, norm)
    rest = [ResBlock(kind, cout, cout, mid, "same", norm) for _ in range(max(0, blocks - 1))]
    return nn.Sequential(first, *rest)


class RDStudent(nn.Module):
    """One-class bottleneck (multi-scale fusion + embedding layer) and the mirrored decoder."""

    def __init__(
        self,
        channels: list[int],
        kind: str,
        base_width: int,
        bottleneck_blocks: int,
        decoder_blocks: list[int],
        norm: str = "batch",
        width: float = 1.0,
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        emb = 2 * c3 if width == 1.0 else max(8, int(round(2 * c3 * width)))
        self.fuse1 = nn.Sequential(
            _conv3x3(c1, c2, 2),
            make_norm(norm, c2),
            nn.ReLU(),
            _conv3x3(c2, c3, 2),
            make_norm(norm, c3),
            nn.ReLU(),
        )
        self.fuse2 = nn.Sequential(_conv3x3(c2, c3, 2), make_norm(norm, c3), nn.ReLU())
        self.embed = _layer(kind, 3 * c3, emb, bottleneck_blocks, "down", base_width, norm, width)
        n3, n2, n1 = decoder_blocks
        self.de_layer3 = _layer(kind, emb, c3, n3, "up", base_width, norm, width)
        self.de_layer2 = _layer(kind, c3, c2, n2, "up", base_width, norm, width)
        self.de_layer1 = _layer(kind, c2, c1, n1, "up", base_width, norm, width)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # as the reference (transposed convs keep torch's init)
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor) -> tuple[torch.Tensor, ...]:
        z = self.embed(torch.cat([self.fuse1(f1), self.fuse2(f2), f3], 1))
        d3 = self.de_layer3(z)
        d2 = self.de_layer2(d3)
        d1 = self.de_layer1(d2)
        return d1, d2, d3


@DETECTORS.register("rd")
class RDDetector(TrainedMapDetector):
    name = "rd"
    default_parallel_models = 16  # the reference-size WRN50 student has ~85M parameters

    def __init__(
        self,
        *,
        backbone: str = "wide_resnet50_2",
        weights: str = "none",
        image_size: int = 128,
        imagenet_norm: bool = False,
        norm: str = "batch",
        lr: float = 0.005,
        betas: tuple[float, float] = (0.5, 0.999),
        weight_decay: float = 0.0,
        cosine: str = "flat",
        map_sigma: float = 0.0,
        score_reduce: str = "mean",
        bottleneck_blocks: int | None = None,
        decoder_blocks: tuple[int, int, int] | None = None,
        width: float = 1.0,
        steps: int = 500,
        train_batch_size: int = 4,
        batch_size: int = 64,
        seed: int = 0,
        parallel_models: int | str = "auto",
        score_batch: int = 256,
        dtype: str = "float32",
        precision: str = "fp32",
        device: str = "auto",
    ) -> None:
        """``bottleneck_blocks`` / ``decoder_blocks``: None = the reference's counts for the
        backbone's block type (bottleneck 3 / [3, 4, 6]; basic 2 / [2, 2, 2])."""
        super().__init__(
            steps=steps,
            seed=seed,
            train_batch_size=train_batch_size,
            batch_size=batch_size,
            parallel_models=parallel_models,
            score_batch=score_batch,
            dtype=dtype,
            precision=precision,
            device=device,
        )
        self.backbone, self.weights = backbone, weights
        self.image_size = int(image_size)
        self.imagenet_norm = bool(imagenet_norm)
        self.norm = norm
        self.lr = float(lr)
        self.betas = tuple(float(b) for b in betas)
        self.weight_decay = float(weight_decay)
        self.cosine = cosine
        if self.cosine not in ("flat", "pixel"):
            raise ValueError(f"rd: cosine must be 'flat' or 'pixel', got {self.cosine!r}")
        self.map_sigma = float(map_sigma)
        self.score_reduce = score_reduce
        if self.score_reduce not in ("max", "mean"):
            raise ValueError(f"rd: score_reduce must be 'max' or 'mean', got {self.score_reduce!r}")
        self.extractor = ResNetFeatureMaps(backbone, weights, ["layer1", "layer2", "layer3"]).to(
            self.device, self.torch_dtype
        )
        self.kind = "bottleneck" if self.extractor.block_type == "Bottleneck" else "basic"
        if bottleneck_blocks is None:
            bottleneck_blocks = 3 if self.kind == "bottleneck" else 2
        self.bottleneck_blocks = int(bottleneck_blocks)
        if decoder_blocks is None:
            decoder_blocks = (3, 4, 6) if self.kind == "bottleneck" else (2, 2, 2)
        self.decoder_blocks = [int(b) for b in decoder_blocks]
        if len(self.decoder_blocks) != 3 or min(self.decoder_blocks) < 1:
            raise ValueError(
                "rd: decoder_blocks must be 3 positive counts (de_layer3, de_layer2, de_layer1), "
                f"got {self.decoder_blocks}"
            )
        self.width = float(width)
        if self.width <= 0:
            raise ValueError(f"rd: width must be positive, got {self.width}")
        if self.image_size % 32:
            raise ValueError(f"rd: image_size must be a multiple of 32, got {self.image_size}")

    def features(self, images: np.ndarray) -> Features:
        maps = extract_maps(
            self.extractor,
            images,
            image_size=self.image_size,
            resize=self.image_size,
            imagenet_norm=self.imagenet_norm,
            device=self.device,
            batch_size=self.batch_size,
            dtype=self.torch_dtype,
            precision=self.precision,
        )
        return tuple(m.contiguous() for m in maps)

    def new_net(self) -> RDStudent:
        with seeded(self.seed):
            net = RDStudent(
                self.extractor.channels,
                self.kind,
                self.extractor.base_width,
                self.bottleneck_blocks,
                self.decoder_blocks,
                self.norm,
                self.width,
            )
        return net.to(self.device, self.torch_dtype)

    def loss(self, net: nn.Module, batch: Features, noise: Any) -> torch.Tensor:
        total = 0.0
        for enc, dec in zip(batch, net(*batch)):
            if self.cosine == "flat":
                cos = F.cosine_similarity(enc.reshape(enc.shape[0], -1), dec.reshape(dec.shape[0], -1), dim=1)
            else:
                cos = F.cosine_similarity(enc, dec, dim=1)
            total = total + (1.0 - cos).mean()
        return total

    def outputs(self, net: nn.Module, feats: Features) -> tuple[torch.Tensor, ...]:
        return net(*feats)

    def maps_from(self, outputs: tuple[torch.Tensor, ...], feats: Features) -> torch.Tensor:
        size = (self.image_size, self.image_size)
        total = None
        for enc, dec in zip(feats, outputs):
            m = (1.0 - F.cosine_similarity(enc, dec, dim=1)).unsqueeze(1)
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=True).squeeze(1)
            total = m if total is None else total + m
        return gaussian_blur(total, self.map_sigma)

    def reduce(self, maps: torch.Tensor) -> torch.Tensor:
        flat = maps.reshape(len(maps), -1)
        return flat.amax(1) if self.score_reduce == "max" else flat.mean(1)

    def optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return adam(params, self.lr, self.betas, self.weight_decay)

    def frozen_state(self) -> dict[str, torch.Tensor]:
        return self.extractor.state_dict()

    def load_frozen_state(self, state: dict[str, torch.Tensor]) -> None:
        self.extractor.load_state_dict(state)

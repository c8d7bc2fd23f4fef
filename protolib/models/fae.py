"""``fae``: the Structural Feature-Autoencoder (Meissen et al.; reference FeliMe/feature-autoencoder).

- Features: a frozen ResNet18 (``backbone``), the outputs of ``layers`` (the stem ``layer0`` +
  layer1 + layer2, as the references) each resized (bilinear, align_corners=True) to
  ``image_size // 4`` and concatenated (64 + 64 + 128 = 256 channels for ResNet18). Input: the
  image resized to ``image_size`` (128), grey repeated to 3 channels, values scaled to [-1, 1] by
  ``(x - 0.5) * 2`` (``center_input``; false: [0, 1]; ``imagenet_norm``: ImageNet statistics).
- The frozen extractor's BatchNorm (``extractor_bn``): ``batch`` (default) as the reference, whose
  trainer calls ``model.train()`` on the whole model: during training the extractor normalises
  each minibatch with its own statistics and its running statistics (momentum 0.1) move from
  ImageNet's to the training images'; scoring uses those running statistics. ``imagenet`` keeps
  the extractor in eval mode with ImageNet's statistics (features computed once).
- Autoencoder (reference ``vanilla_feature_encoder/decoder``): per hidden dim a 5x5 stride-2 conv
  (no bias) + BatchNorm + LeakyReLU + Dropout2d(``dropout`` 0.1), then (``encoder_final_conv``) a
  5x5 stride-1 conv; the decoder mirrors the layers with 6x6 stride-2 transposed convs, then a
  1x1 conv back to the feature channels. ``hidden_dims`` [50, 100] as in the paper.
- Loss: 1 - SSIM between the feature maps and their reconstruction (Gaussian window
  ``ssim_window`` 5, sigma 1.5: the reference's ``SSIMLoss(window_size=5)``). The reference's loss
  is -SSIM: the same gradients, maps and scores shifted by one.
- Adam, lr 2e-4, no weight decay, ``steps`` 500, minibatches of ``train_batch_size`` 32.
- Anomaly map: 1 - SSIM map averaged over channels, upsampled (bilinear, align_corners=True) to
  ``image_size``; image score: the mean of its top ``top_fraction`` (10 %) values.

Per-sample matrix with ``extractor_bn: batch``: model i's extractor statistics are
0.9^T * ImageNet's + (1 - 0.9^T) * image i's own (T = ``steps``; one image gives the same batch
every step), so s(i, k) depends on image i through them: the val features are recomputed per
candidate, K * |val| extractor passes instead of K + |val| (exact: tested equal to one fit per
image). The reference's constructor also runs one random batch through the extractor in train
mode (weight 0.9^(T+1) in the statistics, about 1e-23 at T = 500); that pass is not reproduced.

Against the released reference (FeliMe/feature-autoencoder @ 16ee46d, ``fae/``; the same values
in FeliMe/unsupervised_fairness and iolag/UPD_study) and the paper; * = deviation. Checked
against a transcription of the reference in tests/test_fae_reference.py:

==============  ================================  ===========================================  =========
setting         protolib default                  reference (file)                             paper
==============  ================================  ===========================================  =========
features        stem + layer1 + layer2, 1/4 grid  ``['layer0', 'layer1', 'layer2']``           -
                                                  (``configs/base_config.py``)
input           (x - 0.5) * 2, i.e. [-1, 1]       ``models/feature_extractor.py`` ``Extractor``  -
extractor BN    train mode (``extractor_bn``)     ``train_fae.py`` model.train()                -
autoencoder     * hidden [50, 100], dropout 0.1,  [100, 150, 200, 300] (``base_config.py``),   [50, 100]
                final 5x5 conv in the encoder     ``encoder_conv_final`` (``models/models.py``)
loss            1 - SSIM, window 5, sigma 1.5     ``SSIMLoss(window_size=5)`` (``models.py``;  SSIM
                                                  ``utils/pytorch_ssim.py``)
optimiser       Adam 2e-4, batch 32, * 500 steps  ``base_config.py`` (10 000 steps)             500 steps
score           * mean of top 10 % of whole map   ``models.py`` ``predict_anomaly``:           -
                                                  brain mask, values above the 0.9 quantile
precision       fp32 (bf16/fp16 opt-in: *)        float32                                      -
==============  ================================  ===========================================  =========

Deviations: the reference scores only pixels inside the brain mask (x > 0) and takes values above
the 0.9 quantile; here the whole map is used (datasets of this study have no masks) and the top
10 % by count (the same pixels where no value ties). BatchNorm is kept (``norm: batch``) as a
vmap-safe re-implementation with the same training/evaluation behaviour (see ``vmap_training``);
``norm: group|instance|none`` exist as alternatives. Dropout masks are drawn from a generator
seeded by ``seed``. Each reference value is a setting; e.g. layer1-3 features on [0, 1] inputs,
SSIM window 11 (``pytorch_ssim.py``'s unused default), no final conv and batch 64 are
``layers: [layer1, layer2, layer3]``, ``center_input: false``, ``ssim_window: 11``,
``encoder_final_conv: false``, ``train_batch_size: 64``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from protolib.models.base import DETECTORS
from protolib.models.feature_maps import ResNetFeatureMaps, batch_statistics, bn_buffers, extract_maps, seeded
from protolib.models.ssim import ssim_loss, ssim_map, top_fraction_mean
from protolib.models.trained_map import Features, TrainedMapDetector
from protolib.models.vmap_training import adam, make_norm, minibatch_stream, stack_state, train_plain, train_stacked

EXTRACTOR_BN = ("batch", "imagenet")
FITTED_BN = "fitted_bn."  # prefix of the fitted extractor statistics in a saved detector


class FeatureAutoencoder(nn.Module):
    """The FAE reference's conv autoencoder; dropout is applied with externally drawn masks.
    ``final_conv``: the encoder ends in a 5x5 stride-1 conv (no bias, no norm), as the released
    code's ``encoder_conv_final``."""

    def __init__(
        self,
        in_channels: int,
        hidden_dims: list[int],
        norm: str = "batch",
        dropout: float = 0.1,
        final_conv: bool = True,
    ) -> None:
        super().__init__()
        self.dropout = float(dropout)
        self.enc = nn.ModuleList()
        c = in_channels
        for h in hidden_dims:
            self.enc.append(
                nn.Sequential(
                    nn.Conv2d(c, h, 5, stride=2, padding=2, bias=False),
                    make_norm(norm, h),
                    nn.LeakyReLU(),
                )
            )
            c = h
        # constructed in the reference's order (encoder, its final conv, decoder): the same draws
        self.enc_final = nn.Conv2d(c, c, 5, stride=1, padding=2, bias=False) if final_conv else None
        dims = [in_channels, *hidden_dims]
        self.dec = nn.ModuleList()
        for i in range(len(dims) - 1, 0, -1):
            self.dec.append(
                nn.Sequential(
                    nn.ConvTranspose2d(dims[i], dims[i - 1], 6, stride=2, padding=2, bias=False),
                    make_norm(norm, dims[i - 1]),
                    nn.LeakyReLU(),
                )
            )
        self.final = nn.Conv2d(in_channels, in_channels, 1, bias=False)

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        for i, layer in enumerate(self.enc):
            x = layer(x)
            if masks is not None:
                x = x * masks[i]
        if self.enc_final is not None:
            x = self.enc_final(x)
        for i, layer in enumerate(self.dec, start=len(self.enc)):
            x = layer(x)
            if masks is not None:
                x = x * masks[i]
        # the 1x1 conv as a channel matmul (the same numbers; under vmap a batched matmul)
        return torch.einsum("oc,nchw->nohw", self.final.weight[:, :, 0, 0], x)


def mask_channels(in_channels: int, hidden_dims: list[int]) -> list[int]:
    """Channels after each encoder and decoder layer (where the reference applies Dropout2d)."""
    return [*hidden_dims, *[in_channels, *hidden_dims][-2::-1]]


def sample_masks(channels: list[int], p: float, batch: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Dropout2d masks (batch, C, 1, 1) on the generator's device: each channel zeroed with
    probability p, else 1 / (1 - p)."""
    return [
        (torch.rand(batch, c, 1, 1, generator=generator, device=generator.device) >= p).float() / (1.0 - p)
        for c in channels
    ]


@DETECTORS.register("fae")
class FAEDetector(TrainedMapDetector):
    name = "fae"
    default_parallel_models = 64

    def __init__(
        self,
        *,
        backbone: str = "resnet18",
        weights: str = "none",
        layers: tuple[str, ...] = ("layer0", "layer1", "layer2"),
        image_size: int = 128,
        imagenet_norm: bool = False,
        center_input: bool = True,
        extractor_bn: str = "batch",
        hidden_dims: tuple[int, ...] = (50, 100),
        encoder_final_conv: bool = True,
        dropout: float = 0.1,
        norm: str = "batch",
        lr: float = 2e-4,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        ssim_window: int = 5,
        ssim_sigma: float = 1.5,
        top_fraction: float = 0.1,
        steps: int = 500,
        train_batch_size: int = 32,
        batch_size: int = 64,
        seed: int = 0,
        parallel_models: int | str = "auto",
        score_batch: int = 256,
        dtype: str = "float32",
        precision: str = "fp32",
        device: str = "auto",
    ) -> None:
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
        self.layers = list(layers)
        self.image_size = int(image_size)
        self.imagenet_norm = bool(imagenet_norm)
        self.center_input = bool(center_input)
        if self.imagenet_norm and self.center_input:
            raise ValueError("fae: imagenet_norm and center_input are alternative input scalings; set one to false")
        self.hidden_dims = [int(h) for h in hidden_dims]
        self.encoder_final_conv = bool(encoder_final_conv)
        self.dropout = float(dropout)
        self.norm = norm
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.betas = tuple(float(b) for b in betas)
        self.ssim_window = int(ssim_window)
        self.ssim_sigma = float(ssim_sigma)
        self.top_fraction = float(top_fraction)
        self.feature_size = self.image_size // 4
        if self.feature_size % (2 ** len(self.hidden_dims)):
            raise ValueError(
                f"fae: image_size // 4 = {self.feature_size} must be divisible by 2**len(hidden_dims) = "
                f"{2 ** len(self.hidden_dims)}"
            )
        self.extractor_bn = extractor_bn
        if self.extractor_bn not in EXTRACTOR_BN:
            raise ValueError(f"fae: extractor_bn must be one of {EXTRACTOR_BN}, got {self.extractor_bn!r}")
        extractor = ResNetFeatureMaps(backbone, weights, self.layers)
        self.extractor = extractor.to(self.device, self.torch_dtype)
        self.in_channels = sum(self.extractor.channels)
        self.bn_state: dict[str, torch.Tensor] | None = None  # the fitted extractor statistics

    # ------------------------------------------------------------------ hooks
    def _post(self, maps: list[torch.Tensor]) -> torch.Tensor:
        size = self.feature_size
        return torch.cat([F.interpolate(m, size=(size, size), mode="bilinear", align_corners=True) for m in maps], 1)

    def features(self, images: np.ndarray, state: dict[str, torch.Tensor] | None = None) -> Features:
        """Extractor features in eval mode, with ``state`` (else the fitted) BatchNorm statistics."""
        return self._extract(images, state if state is not None else self.bn_state, self.batch_size, check=True)

    def train_features(
        self, images: np.ndarray, state: dict[str, torch.Tensor], momentum: float | None = None
    ) -> Features:
        """Features of one training minibatch with the extractor in train mode (the reference):
        normalised by the batch's statistics, which update ``state`` in place."""
        with batch_statistics(self.extractor, momentum):
            return self._extract(images, state, len(images), check=False)  # per training step: no host sync

    def _extract(
        self, images: np.ndarray, state: dict[str, torch.Tensor] | None, batch_size: int, check: bool
    ) -> Features:
        """The extractor's feature maps of ``images`` at this detector's size, normalisation and precision."""
        (feats,) = extract_maps(
            self.extractor,
            images,
            image_size=self.image_size,
            resize=self.image_size,
            imagenet_norm=self.imagenet_norm,
            center=self.center_input,
            device=self.device,
            batch_size=batch_size,
            post=self._post,
            dtype=self.torch_dtype,
            precision=self.precision,
            state=state,
            check=check,
        )
        return (feats.contiguous(),)

    # ------------------------------------------------------------------ reference BatchNorm
    def fit(self, images: np.ndarray) -> FAEDetector:
        self.bn_state = None
        if self.extractor_bn == "imagenet":
            return super().fit(images)
        if len(images) == 0:
            raise ValueError("fae: cannot fit on zero training images")
        state = bn_buffers(self.extractor)
        images = self.prepared_images(images)  # resized once, not once per step
        stream = minibatch_stream(len(images), self.train_batch_size, torch.Generator().manual_seed(self.seed))
        net = self.new_net()
        train_plain(
            net,
            self.training_loss,
            lambda step: self.train_features(images[next(stream).numpy()], state),
            self.steps,
            self.optimizer(list(net.parameters())),
            self.noise_fn(),
        )
        self.bn_state, self.net = state, net.eval()
        return self

    def single_image_state(self, image: np.ndarray) -> tuple[Features, dict[str, torch.Tensor]]:
        """Training features of a one-image fit and its extractor statistics after ``steps``:
        every step sees the same batch, so r_T = m^T r_0 + (1 - m^T) b (m = 1 - momentum)."""
        r0 = bn_buffers(self.extractor)
        batch = {k: v.clone() for k, v in r0.items()}
        feats = self.train_features(image[None], batch, momentum=1.0)  # batch stats b, unbiased var
        keep = {
            name: 1.0 - float(m.momentum)
            for name, m in self.extractor.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
        }
        state = {}
        for k, v in r0.items():
            if k.endswith("num_batches_tracked"):
                state[k] = v + self.steps
            else:
                w = keep[k.rsplit(".", 1)[0]] ** self.steps
                state[k] = w * v + (1.0 - w) * batch[k]
        return feats, state

    def score_matrix(self, train_images: np.ndarray, val_images: np.ndarray) -> np.ndarray:
        """As the base class; with ``extractor_bn: batch`` each candidate's model also has its own
        extractor statistics, so the val features are recomputed for every candidate."""
        if self.extractor_bn == "imagenet":
            return super().score_matrix(train_images, val_images)
        if len(train_images) == 0:
            return np.empty((0, len(val_images)))
        template = self.new_net()

        def group_rows(start: int, stop: int) -> list[np.ndarray]:
            singles = [self.single_image_state(img) for img in train_images[start:stop]]
            group = (torch.stack([feats[0] for feats, _ in singles]),)  # (P, 1, C, h, w)
            params, buffers = stack_state(template, len(singles))
            params, buffers, _ = train_stacked(
                template, params, buffers, self.training_loss, group, self.steps, self.optimizer, self.noise_fn()
            )
            rows = []
            for j, (_, state) in enumerate(singles):
                one = ({k: v[j : j + 1] for k, v in params.items()}, {k: v[j : j + 1] for k, v in buffers.items()})
                rows.append(self._stacked_scores(template, *one, self.features(val_images, state)))
            return rows

        return np.concatenate(self.in_groups(len(train_images), group_rows)).astype(np.float64)

    def new_net(self) -> FeatureAutoencoder:
        with seeded(self.seed):
            net = FeatureAutoencoder(
                self.in_channels, self.hidden_dims, self.norm, self.dropout, self.encoder_final_conv
            )
        return net.to(self.device, self.torch_dtype)

    def loss(self, net: nn.Module, batch: Features, noise: Any) -> torch.Tensor:
        (feats,) = batch
        return ssim_loss(net(feats, noise), feats, self.ssim_window, self.ssim_sigma)

    def outputs(self, net: nn.Module, feats: Features) -> torch.Tensor:
        return net(feats[0])

    def maps_from(self, outputs: torch.Tensor, feats: Features) -> torch.Tensor:
        residual = 1.0 - ssim_map(outputs, feats[0], self.ssim_window, self.ssim_sigma).mean(1, keepdim=True)
        residual = F.interpolate(residual, size=(self.image_size, self.image_size), mode="bilinear", align_corners=True)
        return residual.squeeze(1)

    def reduce(self, maps: torch.Tensor) -> torch.Tensor:
        return top_fraction_mean(maps, self.top_fraction)

    def optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        return adam(params, self.lr, self.betas, self.weight_decay)

    def noise_fn(self):
        """Dropout masks from a generator seeded by ``seed`` (the same draws in every fit)."""
        if self.dropout <= 0:
            return None
        channels = mask_channels(self.in_channels, self.hidden_dims)
        # drawn where they are used (on a GPU its own seeded stream: no copy, no sync per step)
        generator = torch.Generator(device=self.device).manual_seed(self.seed + 1)

        def noise(step: int, batch: int) -> list[torch.Tensor]:
            masks = sample_masks(channels, self.dropout, batch, generator)
            return [m.to(self.torch_dtype) for m in masks]

        return noise

    def frozen_state(self) -> dict[str, torch.Tensor]:
        fitted = {FITTED_BN + k: v for k, v in (self.bn_state or {}).items()}
        return {**self.extractor.state_dict(), **fitted}

    def load_frozen_state(self, state: dict[str, torch.Tensor]) -> None:
        fitted = {k[len(FITTED_BN) :]: v.to(self.device) for k, v in state.items() if k.startswith(FITTED_BN)}
        self.extractor.load_state_dict({k: v for k, v in state.items() if not k.startswith(FITTED_BN)})
        self.bn_state = fitted or None

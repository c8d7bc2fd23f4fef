"""The FAE reference, transcribed as an independent reference for tests/test_fae_reference.py.

Source: FeliMe/feature-autoencoder, commit 16ee46d0ba8ccf9c4e7e56a2f569efa5ffc0dc15 (the released
code; FeliMe/unsupervised_fairness @ 6b21be2 and iolag/UPD_study have the same values):
``fae/models/feature_extractor.py`` (ResNetFeatureExtractor, Extractor), ``fae/models/models.py``
(vanilla_feature_encoder/decoder, FeatureAutoencoder, FeatureReconstructor.loss /
predict_anomaly), ``fae/utils/pytorch_ssim.py`` (gaussian, create_window, _ssim, SSIMLoss),
``fae/configs/base_config.py`` (REFERENCE_CONFIG) and ``fae/train_fae.py`` (train_step).
Left out: W&B loading/saving, the MSE loss option, the ``keep_feature_prop`` channel mask (1.0 in
the config: every channel kept) and the ``pretrained`` download (weights are loaded by the test).
Kept line for line otherwise, including the reference's names, so a reader can compare.
"""

from __future__ import annotations

from argparse import Namespace
from math import exp

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

#: ``fae/configs/base_config.py`` defaults that the model and its training read
REFERENCE_CONFIG = {
    "image_size": 128,
    "lr": 2e-4,
    "weight_decay": 0.0,
    "max_steps": 10000,
    "batch_size": 32,
    "loss_fn": "ssim",
    "hidden_dims": [100, 150, 200, 300],
    "dropout": 0.1,
    "extractor_cnn_layers": ["layer0", "layer1", "layer2"],
    "keep_feature_prop": 1.0,
}


# ----------------------------------------------------------------------------- fae/utils/pytorch_ssim.py
def gaussian(window_size: int, sigma: float = 1.5) -> Tensor:
    gauss = Tensor([exp(-((x - window_size // 2) ** 2) / float(2 * sigma**2)) for x in range(window_size)])
    return gauss / gauss.sum()


def create_window(window_size: int, channel: int) -> Tensor:
    _1D_window = gaussian(window_size, 1.5).unsqueeze(1)  # [w, 1]
    window = (_1D_window @ _1D_window.T)[None, None]  # [1, 1, w, w]
    window = window.expand(channel, 1, window_size, window_size)
    return window


def _ssim(img1: Tensor, img2: Tensor, window: Tensor, window_size: int, channel: int, size_average: bool = True):
    mu1 = F.conv2d(img1, window, padding=window_size // 2, groups=channel)
    mu2 = F.conv2d(img2, window, padding=window_size // 2, groups=channel)
    mu1_sq = mu1.pow(2)
    mu2_sq = mu2.pow(2)
    mu1_mu2 = mu1 * mu2
    sigma1_sq = F.conv2d(img1 * img1, window, padding=window_size // 2, groups=channel) - mu1_sq
    sigma2_sq = F.conv2d(img2 * img2, window, padding=window_size // 2, groups=channel) - mu2_sq
    sigma12 = F.conv2d(img1 * img2, window, padding=window_size // 2, groups=channel) - mu1_mu2
    C1 = 0.01**2
    C2 = 0.03**2
    ssim_map = ((2 * mu1_mu2 + C1) * (2 * sigma12 + C2)) / ((mu1_sq + mu2_sq + C1) * (sigma1_sq + sigma2_sq + C2))
    return ssim_map.mean() if size_average else ssim_map


class SSIMLoss(nn.Module):
    def __init__(self, window_size: int = 11, size_average: bool = True):
        super().__init__()
        self.window_size = window_size
        self.size_average = size_average
        self.channel = 1
        self.window = create_window(window_size, self.channel)

    def forward(self, img1: Tensor, img2: Tensor):
        (_, channel, _, _) = img1.size()
        if channel == self.channel and self.window.data.type() == img1.data.type():
            window = self.window
        else:
            window = create_window(self.window_size, channel)
            window = window.type_as(img1)
            self.window = window
            self.channel = channel
        # SSIM loss is the negative ssim
        return -_ssim(img1, img2, window, self.window_size, channel, self.size_average)


# ----------------------------------------------------------------------------- fae/models/feature_extractor.py
class ResNetFeatureExtractor(nn.Module):
    def __init__(self, resnet, layer_names):
        super().__init__()
        for param in resnet.parameters():
            param.requires_grad = False
        self.layer0 = nn.Sequential(*list(resnet.children())[:4])
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        self.avgpool = resnet.avgpool
        self.layer_names = layer_names

    def forward(self, inp: Tensor) -> dict[str, Tensor]:
        if inp.shape[1] == 1:
            inp = inp.repeat(1, 3, 1, 1)
        out = {}
        for name, module in self._modules.items():
            inp = module(inp)
            if name in self.layer_names:
                out[name] = inp
            if name == self.layer_names[-1]:
                break
        return out


class Extractor(nn.Module):
    def __init__(self, resnet, cnn_layers, upsample="bilinear", inp_size=128):
        super().__init__()
        self.backbone = ResNetFeatureExtractor(resnet, layer_names=cnn_layers)
        self.inp_size = inp_size
        self.featmap_size = inp_size // 4
        self.upsample = upsample
        self.align_corners = True if upsample == "bilinear" else None
        self.c_feats = self.get_out_channels()

    def get_out_channels(self):
        # as the reference: one random batch in train mode (it moves the BatchNorm statistics;
        # the test loads its weights and statistics afterwards)
        inp = torch.randn((2, 1, self.inp_size, self.inp_size))
        return sum([feat_map.shape[1] for feat_map in self.backbone(inp).values()])

    def forward(self, inp: Tensor):
        # Center input
        inp = (inp - 0.5) * 2
        feat_maps = self.backbone(inp)
        features = []
        for feat_map in feat_maps.values():
            feat_map = F.interpolate(
                feat_map, size=self.featmap_size, mode=self.upsample, align_corners=self.align_corners
            )
            features.append(feat_map)
        return torch.cat(features, dim=1)


# ----------------------------------------------------------------------------- fae/models/models.py
def vanilla_feature_encoder(in_channels, hidden_dims, norm_layer=None, dropout=0.0, bias=False):
    ks = 5
    pad = ks // 2
    enc = nn.Sequential()
    for i in range(len(hidden_dims)):
        layer = nn.Sequential()
        layer.add_module(
            f"encoder_conv_{i}", nn.Conv2d(in_channels, hidden_dims[i], ks, stride=2, padding=pad, bias=bias)
        )
        if norm_layer is not None:
            layer.add_module(f"encoder_norm_{i}", norm_layer(hidden_dims[i]))
        layer.add_module(f"encoder_relu_{i}", nn.LeakyReLU())
        if dropout > 0:
            layer.add_module(f"encoder_dropout_{i}", nn.Dropout2d(dropout))
        enc.add_module(f"encoder_layer_{i}", layer)
        in_channels = hidden_dims[i]
    # Final layer
    enc.add_module("encoder_conv_final", nn.Conv2d(in_channels, in_channels, ks, stride=1, padding=pad, bias=bias))
    return enc


def vanilla_feature_decoder(out_channels, hidden_dims, norm_layer=None, dropout=0.0, bias=False):
    ks = 6
    pad = 2
    hidden_dims = [out_channels] + hidden_dims
    dec = nn.Sequential()
    for i in range(len(hidden_dims) - 1, 0, -1):
        layer = nn.Sequential()
        layer.add_module(
            f"decoder_tconv_{i}",
            nn.ConvTranspose2d(hidden_dims[i], hidden_dims[i - 1], ks, stride=2, padding=pad, bias=bias),
        )
        if norm_layer is not None:
            layer.add_module(f"decoder_norm_{i}", norm_layer(hidden_dims[i - 1]))
        layer.add_module(f"decoder_relu_{i}", nn.LeakyReLU())
        if dropout > 0:
            layer.add_module(f"decoder_dropout_{i}", nn.Dropout2d(dropout))
        dec.add_module(f"decoder_layer_{i}", layer)
    dec.add_module("decoder_conv_final", nn.Conv2d(hidden_dims[0], out_channels, 1, bias=False))
    return dec


class FeatureAutoencoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.enc = vanilla_feature_encoder(
            config.in_channels, config.hidden_dims, norm_layer=nn.BatchNorm2d, dropout=config.dropout, bias=False
        )
        self.dec = vanilla_feature_decoder(
            config.in_channels, config.hidden_dims, norm_layer=nn.BatchNorm2d, dropout=config.dropout, bias=False
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.dec(self.enc(x))


class FeatureReconstructor(nn.Module):
    def __init__(self, config, resnet):
        super().__init__()
        self.extractor = Extractor(resnet, inp_size=config.image_size, cnn_layers=config.extractor_cnn_layers)
        config.in_channels = self.extractor.c_feats
        self.ae = FeatureAutoencoder(config)
        self.loss_fn = SSIMLoss(window_size=5, size_average=False)

    def forward(self, x: Tensor):
        with torch.no_grad():
            feats = self.extractor(x)
        return feats, self.ae(feats)

    def loss(self, x: Tensor):
        feats, rec = self(x)
        loss = self.loss_fn(rec, feats).mean()
        return {"rec_loss": loss}

    def predict_anomaly(self, x: Tensor):
        feats, rec = self(x)
        anomaly_map = self.loss_fn(rec, feats).mean(1, keepdim=True)
        anomaly_map = F.interpolate(anomaly_map, x.shape[-2:], mode="bilinear", align_corners=True)
        # Anomaly score only where object in the image, i.e. at x > 0
        anomaly_score = []
        for i in range(x.shape[0]):
            roi = anomaly_map[i][x[i] > 0]
            roi = roi[roi > torch.quantile(roi, 0.9)]
            anomaly_score.append(roi.mean())
        anomaly_score = torch.stack(anomaly_score)
        return anomaly_map, anomaly_score


# ----------------------------------------------------------------------------- fae/train_fae.py
def train_step(model, optimizer, x):
    model.train()
    optimizer.zero_grad()
    loss_dict = model.loss(x)
    loss = loss_dict["rec_loss"]
    loss.backward()
    optimizer.step()
    return loss_dict


def reference_model(resnet: nn.Module, **over) -> FeatureReconstructor:
    """``FeatureReconstructor`` on ``resnet`` with the base config, ``over`` replacing keys."""
    return FeatureReconstructor(Namespace(**{**REFERENCE_CONFIG, **over}), resnet)

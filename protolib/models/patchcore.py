"""``patchcore``: PatchCore (Roth et al.; reference amazon-science/patchcore-inspection).

- Features: a frozen WideResNet50-2 (``backbone``), ``layers`` layer2 + layer3. Input: resize
  ``image_size`` * 256 / 224, centre crop ``image_size`` (224), ImageNet normalisation.
- Locally aware patch features: each layer's map is averaged over its 3x3 neighbourhood
  (``patch_size``, stride 1, zero padding counted), layer3 is resized (bilinear) to layer2's grid,
  each layer's channel vector is adaptive-average-pooled to ``pretrain_embed_dim`` (1024), the
  layers are concatenated and pooled again to ``target_embed_dim`` (1024) (the reference's
  ``Preprocessing`` + ``Aggregator``).
- Memory bank: the training patches sub-sampled by the approximate greedy k-center core-set of the
  reference (``ApproximateGreedyCoresetSampler``): ``coreset_ratio`` (0.1) of the patches, at
  least one, distances on a random linear projection to ``projection_dim`` (128) dims, started
  from the mean distance to ``coreset_starts`` (10) random patches. The projection and the
  starts are drawn from a generator seeded with ``seed``, so every fit is deterministic.
- Image score: max over the image's patches of the squared Euclidean distance to the nearest
  memory-bank patch, as the reference (faiss ``IndexFlatL2`` returns squared distances;
  ``anomaly_scorer_num_nn`` 1; ``PatchMaker.score`` takes the max). ``anomaly_map`` returns these
  patch scores upsampled (bilinear) to ``image_size`` and smoothed with a Gaussian of sigma
  ``map_sigma`` (4), as the reference's ``RescaleSegmentor``. The core-set sampler measures
  plain (not squared) Euclidean distances, as the reference's sampler.

``score_matrix`` is exact from one feature pass: each candidate image gets its own memory bank
with its own core-set (batched greedy selection over candidates), and the nearest-neighbour search
of all val patches against all candidate banks runs as chunked matrix products.

Against the reference (amazon-science/patchcore-inspection, ``src/patchcore/``) and the paper;
* = deviation:

==================  ====================================  ===============================  =======
setting             protolib default                      reference (file)                 paper
==================  ====================================  ===============================  =======
backbone, layers    WRN50-2, layer2 + layer3              ``patchcore.py``, ``backbones``  same
neighbourhood       * 3x3 average, then channel pooling   ``patchcore.py`` PatchMaker      average
embedding           1024 (pretrain) -> 1024 (target)      ``common.py`` Preprocessing,     1024
                                                          Aggregator
core-set            10 %, 128-d projection, Euclidean     ``sampler.py`` ApproximateGreedy 10 %
image score         max of squared NN distance, k = 1     ``common.py`` FaissNN            max
                                                          (IndexFlatL2), PatchMaker.score
anomaly map         bilinear, Gaussian sigma 4            ``common.py`` RescaleSegmentor   -
precision           fp32 (bf16/fp16 opt-in: *)            float32                          -
==================  ====================================  ===============================  =======

Deviations: the reference unfolds 3x3 patches and pools the flattened (C, 3, 3) vector, which
mixes neighbourhood and channels; here the neighbourhood is averaged first, then channels are
pooled, as the paper describes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from protolib.models.backbones import resolve_device
from protolib.models.base import DETECTORS, Detector
from protolib.models.feature_maps import PreparedImages, ResNetFeatureMaps, extract_maps, read_saved, save_detector
from protolib.models.neighbours import nearest_squared
from protolib.models.precision import check_precision
from protolib.models.ssim import gaussian_blur


def _pool_channels(x: torch.Tensor, dim: int) -> torch.Tensor:
    """(..., C) -> (..., dim) by adaptive average pooling over the channel axis."""
    shape = x.shape[:-1]
    return F.adaptive_avg_pool1d(x.reshape(-1, 1, x.shape[-1]), dim).reshape(*shape, dim)


def squared_pairwise_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between rows: (..., n, d) x (..., m, d) -> (..., n, m)."""
    d = (a * a).sum(-1, keepdim=True) + (b * b).sum(-1).unsqueeze(-2) - 2.0 * (a @ b.transpose(-1, -2))
    return d.clamp_min_(0.0)


def pairwise_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between rows (the core-set sampler's measure)."""
    return squared_pairwise_distances(a, b).sqrt_()


def greedy_coreset(
    features: torch.Tensor, n_select: int, projection: torch.Tensor | None, starts: torch.Tensor
) -> torch.Tensor:
    """Approximate greedy k-center core-set of each bank of a batch.

    features (B, N, D); projection (D, d) or None; starts: indices of the start points.
    Returns (B, n_select) indices. Each bank is processed independently (the batch axis only
    vectorises the loop), so a batch of banks gives the same indices as one bank at a time.
    """
    reduced = features @ projection if projection is not None else features
    anchors = pairwise_distances(reduced, reduced[:, starts]).mean(-1)  # (B, N)
    chosen = []
    for _ in range(n_select):
        idx = anchors.argmax(1)  # (B,)
        chosen.append(idx)
        picked = reduced[torch.arange(len(reduced), device=reduced.device), idx].unsqueeze(1)  # (B, 1, d)
        anchors = torch.minimum(anchors, pairwise_distances(reduced, picked).squeeze(-1))
    return torch.stack(chosen, 1)


@DETECTORS.register("patchcore")
class PatchCoreDetector(Detector):
    name = "patchcore"
    network_backbone = True

    def __init__(
        self,
        *,
        backbone: str = "wide_resnet50_2",
        weights: str = "none",
        layers: tuple[str, ...] = ("layer2", "layer3"),
        image_size: int = 224,
        batch_size: int = 64,
        patch_size: int = 3,
        pretrain_embed_dim: int = 1024,
        target_embed_dim: int = 1024,
        coreset_ratio: float = 0.1,
        projection_dim: int = 128,
        coreset_starts: int = 10,
        map_sigma: float = 4.0,
        seed: int = 0,
        query_chunk: int = 8192,
        precision: str = "fp32",
        device: str = "auto",
    ) -> None:
        self.device = resolve_device(device)
        self.backbone, self.weights = backbone, weights
        self.layers = list(layers)
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.patch_size = int(patch_size)
        self.pretrain_embed_dim = int(pretrain_embed_dim)
        self.target_embed_dim = int(target_embed_dim)
        self.coreset_ratio = float(coreset_ratio)
        self.projection_dim = int(projection_dim)
        self.coreset_starts = int(coreset_starts)
        self.map_sigma = float(map_sigma)
        self.seed = int(seed)
        self.query_chunk = max(1, int(query_chunk))
        self.precision = check_precision(precision, "patchcore")
        if not 0 < self.coreset_ratio <= 1:
            raise ValueError(f"patchcore: coreset_ratio must be in (0, 1], got {self.coreset_ratio}")
        if self.patch_size % 2 != 1:
            raise ValueError(f"patchcore: patch_size must be odd, got {self.patch_size}")
        self.extractor = ResNetFeatureMaps(backbone, weights, self.layers).to(self.device)
        self.bank: torch.Tensor | None = None
        self.grid: tuple[int, int] | None = None

    # ------------------------------------------------------------------ features
    def _aggregate(self, maps: list[torch.Tensor]) -> torch.Tensor:
        p = self.patch_size
        ref = maps[0].shape[-2:]
        per_layer = []
        for m in maps:
            m = F.avg_pool2d(m, p, stride=1, padding=p // 2)
            if m.shape[-2:] != ref:
                m = F.interpolate(m, size=ref, mode="bilinear", align_corners=False)
            per_layer.append(_pool_channels(m.permute(0, 2, 3, 1), self.pretrain_embed_dim))
        stacked = torch.cat(per_layer, -1)  # (N, h, w, L * E)
        return _pool_channels(stacked, self.target_embed_dim)

    def patch_features(self, images: np.ndarray) -> torch.Tensor:
        """(N, h, w, D) locally aware patch features of the images, float32 on the device."""
        (feats,) = extract_maps(
            self.extractor,
            images,
            image_size=self.image_size,
            resize=None,
            imagenet_norm=True,
            device=self.device,
            batch_size=self.batch_size,
            post=self._aggregate,
            precision=self.precision,
        )
        return feats

    def prepared_images(self, images: np.ndarray) -> np.ndarray | PreparedImages:
        """Images scored under many fits, decoded and resized once."""
        return PreparedImages.maybe(images, self.image_size, None)

    # ------------------------------------------------------------------ core-set
    def _sampler_state(self, n_patches: int, dim: int) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The random projection and start points of a fit (seeded: the same in every fit)."""
        g = torch.Generator().manual_seed(self.seed)
        projection = None
        if self.projection_dim and self.projection_dim != dim:
            bound = 1.0 / np.sqrt(dim)  # torch.nn.Linear's default init, as the reference's mapper
            projection = ((torch.rand(dim, self.projection_dim, generator=g) * 2 - 1) * bound).to(self.device)
        starts = torch.randperm(n_patches, generator=g)[: min(self.coreset_starts, n_patches)].to(self.device)
        return projection, starts

    def _n_select(self, n_patches: int) -> int:
        if self.coreset_ratio >= 1:
            return n_patches
        return max(1, int(n_patches * self.coreset_ratio))

    def _coreset(self, banks: torch.Tensor) -> torch.Tensor:
        """(B, N, D) banks -> (B, n, D) core-sets (each bank on its own)."""
        n = banks.shape[1]
        n_select = self._n_select(n)
        if n_select >= n:
            return banks
        projection, starts = self._sampler_state(n, banks.shape[-1])
        idx = greedy_coreset(banks, n_select, projection, starts)
        return torch.gather(banks, 1, idx.unsqueeze(-1).expand(-1, -1, banks.shape[-1]))

    # ------------------------------------------------------------------ detector API
    def fit(self, images: np.ndarray) -> PatchCoreDetector:
        if len(images) == 0:
            raise ValueError("patchcore: cannot fit on zero training images")
        with torch.inference_mode():
            feats = self.patch_features(images)
            self.grid = tuple(feats.shape[1:3])
            bank = feats.reshape(1, -1, feats.shape[-1])
            self.bank = self._coreset(bank)[0].clone()
        return self

    def patch_scores(self, images: np.ndarray) -> torch.Tensor:
        """(N, h, w) squared nearest-neighbour distance of every patch to the memory bank, float64
        (``neighbours.nearest_squared``: faiss on the CPU, torch float32 on a GPU)."""
        if self.bank is None:
            raise RuntimeError("patchcore: score called before fit")
        with torch.inference_mode():
            feats = self.patch_features(images)
            n, h, w, d = feats.shape
            nearest = nearest_squared(
                self.bank, feats.reshape(-1, d), 1, device=self.device, dtype=self.bank.dtype, chunk=self.query_chunk
            )
        return torch.from_numpy(nearest[:, 0]).reshape(n, h, w).to(feats.device)

    def score(self, images: np.ndarray) -> np.ndarray:
        return self.patch_scores(images).amax(dim=(1, 2)).double().cpu().numpy()

    def anomaly_map(self, images: np.ndarray) -> np.ndarray:
        """(N, image_size, image_size) patch scores upsampled to the network input, smoothed."""
        scores = self.patch_scores(images)
        with torch.inference_mode():
            maps = F.interpolate(
                scores.unsqueeze(1), size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            ).squeeze(1)
            maps = gaussian_blur(maps, self.map_sigma)
        return maps.float().cpu().numpy()

    def score_matrix(self, train_images: np.ndarray, val_images: np.ndarray) -> np.ndarray:
        """Row i: val scores of a PatchCore fitted on candidate i alone (own bank, own core-set)."""
        if len(train_images) == 0:
            return np.empty((0, len(val_images)))
        with torch.inference_mode():
            ft = self.patch_features(train_images)
            k, h, w, d = ft.shape
            banks = self._coreset(ft.reshape(k, h * w, d))  # (K, m, D)
            m = banks.shape[1]
            flat = banks.reshape(k * m, d)
            fv = self.patch_features(val_images)
            v = len(fv)
            patches = h * w
            per_chunk = max(1, self.query_chunk // patches)
            cols = []
            for s in range(0, v, per_chunk):
                q = fv[s : s + per_chunk].reshape(-1, d)  # (n * P, D)
                dist = squared_pairwise_distances(q, flat).reshape(len(q), k, m).amin(-1)  # (n * P, K)
                cols.append(dist.reshape(-1, patches, k).amax(1).T)  # (K, n)
            out = torch.cat(cols, 1)
        return out.double().cpu().numpy()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        if self.bank is None:
            raise RuntimeError("patchcore: save called before fit")
        save_detector(
            path,
            self.name,
            self.get_params(),
            {"frozen": self.extractor.state_dict(), "bank": self.bank, "grid": list(self.grid)},
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> PatchCoreDetector:
        cfg, state = read_saved(path, cls.name)
        det = cls.from_saved(cfg, device=device)
        det.extractor.load_state_dict(state["frozen"])
        det.bank = state["bank"].to(det.device)
        det.grid = tuple(state["grid"])
        return det

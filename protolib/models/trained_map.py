"""``TrainedMapDetector``: the base of the detectors that train a small net on frozen feature maps
(FAE, RD): fitting, scoring, anomaly maps, the batched per-sample matrix and persistence, built on
the training engine of :mod:`protolib.models.vmap_training`."""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from protolib.models.backbones import resolve_device
from protolib.models.base import Detector
from protolib.models.feature_maps import PreparedImages, read_saved, save_detector
from protolib.models.precision import check_precision, compute_context
from protolib.models.vmap_training import minibatch_stream, stack_state, stacked_call, train_plain, train_stacked

Features = tuple[torch.Tensor, ...]
log = logging.getLogger(__name__)


class TrainedMapDetector(Detector):
    """Base of the detectors that train a small net on frozen feature maps (FAE, RD).

    Subclasses give the frozen ``features`` (a tuple of per-image tensors), a seeded ``new_net``,
    the training ``loss``, the net's ``outputs`` on features, the anomaly ``maps_from`` outputs
    (N, S, S) and the image score ``reduce``. This class supplies ``fit`` (``train_plain`` with
    shuffled minibatches of ``train_batch_size``), ``score``, ``anomaly_map``, the batched
    ``score_matrix`` (``train_stacked``: ``parallel_models`` single-image models at a time, all
    starting from the same seeded initialisation a single ``fit`` uses) and ``save``/``load``.
    Every fit is deterministic given the config's ``seed``. The settings shared by both
    (training length, seeds, batching, precision) are this constructor's keywords; each subclass
    names them in its own signature with its own defaults and passes them on.

    ``parallel_models: auto`` trains the subclass's ``default_parallel_models`` at once on CUDA and
    one at a time on the CPU: there a batched step costs about as much as the models' steps one
    after another once a model has more than a few 100k parameters (grouped convolutions are not
    faster than separate ones; the work is FLOP/memory bound), while on a GPU a single-image step
    is launch bound. Tiny models do gain on the CPU too (benchmarks/bench_detectors.py).
    """

    default_parallel_models = 32  # models trained at once on CUDA (parallel_models: auto)
    network_backbone = True

    def __init__(
        self,
        *,
        steps: int,
        seed: int,
        train_batch_size: int,
        batch_size: int,
        parallel_models: int | str,
        score_batch: int,
        dtype: str,
        precision: str,
        device: str,
    ) -> None:
        self.device = resolve_device(device)
        self.steps = int(steps)
        self.seed = int(seed)
        self.train_batch_size = int(train_batch_size)
        self.batch_size = int(batch_size)
        if parallel_models == "auto":  # batching pays on GPUs; on CPUs only for tiny models (see benchmark)
            parallel_models = self.default_parallel_models if self.device.startswith("cuda") else 1
        self.parallel_models = max(1, int(parallel_models))
        self.score_batch = max(1, int(score_batch))
        if dtype not in ("float32", "float64"):
            raise ValueError(f"{self.name}: dtype must be 'float32' or 'float64', got {dtype!r}")
        self.dtype = dtype
        self.torch_dtype = torch.float64 if dtype == "float64" else torch.float32
        self.precision = check_precision(precision, self.name)
        self.net: nn.Module | None = None

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def features(self, images: np.ndarray) -> Features: ...

    @abstractmethod
    def new_net(self) -> nn.Module: ...

    @abstractmethod
    def loss(self, net: nn.Module, batch: Features, noise: Any) -> torch.Tensor: ...

    @abstractmethod
    def outputs(self, net: nn.Module, feats: Features) -> Any: ...

    @abstractmethod
    def maps_from(self, outputs: Any, feats: Features) -> torch.Tensor: ...

    @abstractmethod
    def reduce(self, maps: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer: ...

    def noise_fn(self) -> Callable[[int, int], Any] | None:
        return None

    def training_loss(self, net: nn.Module, batch: Features, noise: Any) -> torch.Tensor:
        """``loss`` at the detector's ``precision`` (bf16: forward under autocast), in float32 or
        the detector's dtype."""
        with compute_context(self.device, self.precision, training=True):
            loss = self.loss(net, batch, noise)
        return loss.to(self.torch_dtype)

    def prepared_images(self, images: np.ndarray) -> Any:
        """Images scored under many fits, decoded and resized once."""

        return PreparedImages.maybe(images, self.image_size, self.image_size)

    @abstractmethod
    def frozen_state(self) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def load_frozen_state(self, state: dict[str, torch.Tensor]) -> None: ...

    # ------------------------------------------------------------------ fitting and scoring
    def fit(self, images: np.ndarray) -> TrainedMapDetector:
        if len(images) == 0:
            raise ValueError(f"{self.name}: cannot fit on zero training images")
        feats = self.features(images)
        net = self.new_net()
        stream = minibatch_stream(len(feats[0]), self.train_batch_size, torch.Generator().manual_seed(self.seed))

        def batch_fn(step: int) -> Features:
            idx = next(stream).to(feats[0].device)
            return tuple(f[idx] for f in feats)

        train_plain(
            net, self.training_loss, batch_fn, self.steps, self.optimizer(list(net.parameters())), self.noise_fn()
        )
        self.net = net.eval()
        return self

    def _check_fitted(self) -> nn.Module:
        if self.net is None:
            raise RuntimeError(f"{self.name}: score called before fit")
        return self.net

    def anomaly_map(self, images: np.ndarray) -> np.ndarray:
        """Per-image anomaly maps (N, image_size, image_size) of the fitted detector."""
        net = self._check_fitted()
        feats = self.features(images)
        out = []
        with torch.inference_mode():
            for start in range(0, len(feats[0]), self.score_batch):
                chunk = tuple(f[start : start + self.score_batch] for f in feats)
                out.append(self.maps_from(self.outputs(net, chunk), chunk).float().cpu())
        return torch.cat(out).numpy()

    def score(self, images: np.ndarray) -> np.ndarray:
        maps = torch.from_numpy(self.anomaly_map(images))
        return self.reduce(maps).double().numpy()

    def score_matrix(self, train_images: np.ndarray, val_images: np.ndarray) -> np.ndarray:
        """Row i: val scores of the model trained on candidate i alone; models trained in groups of
        ``parallel_models`` at once (equal to one ``fit`` per candidate, tested)."""
        if len(train_images) == 0:
            return np.empty((0, len(val_images)))
        ft = self.features(train_images)
        fv = self.features(val_images)
        template = self.new_net()

        def group_rows(start: int, stop: int) -> list[np.ndarray]:
            group = tuple(f[start:stop].unsqueeze(1) for f in ft)
            params, buffers = stack_state(template, len(group[0]))
            params, buffers, _ = train_stacked(
                template, params, buffers, self.training_loss, group, self.steps, self.optimizer, self.noise_fn()
            )
            return [self._stacked_scores(template, params, buffers, fv)]

        return np.concatenate(self.in_groups(len(ft[0]), group_rows)).astype(np.float64)

    def in_groups(self, n: int, group_rows: Callable[[int, int], list[np.ndarray]]) -> list[np.ndarray]:
        """``group_rows(start, stop)`` over ``parallel_models`` candidates at a time. A CUDA
        out-of-memory error halves ``parallel_models`` (logged) and retries the group in the same
        job; at one model it is raised (equal results: the models do not interact)."""
        rows: list[np.ndarray] = []
        start = 0
        while start < n:
            stop = min(n, start + self.parallel_models)
            try:
                rows.extend(group_rows(start, stop))
            except torch.cuda.OutOfMemoryError:
                if self.parallel_models == 1:
                    raise
                self.parallel_models = max(1, self.parallel_models // 2)
                torch.cuda.empty_cache()
                log.warning(
                    "%s: CUDA out of memory training %d models at once; going on with parallel_models = %d",
                    self.name,
                    stop - start,
                    self.parallel_models,
                )
                continue
            start = stop
        return rows

    def _stacked_scores(
        self, template: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], fv: Features
    ) -> np.ndarray:
        n_models = next(iter(params.values())).shape[0]
        per_chunk = max(1, self.score_batch // n_models)
        cols = []
        with torch.inference_mode():
            for start in range(0, len(fv[0]), per_chunk):
                chunk = tuple(f[start : start + per_chunk] for f in fv)
                out = stacked_call(template, params, buffers, self.outputs, (chunk,), (None,))
                flat_out = _flatten_models(out)
                flat_feats = tuple(f.unsqueeze(0).expand(n_models, *f.shape).reshape(-1, *f.shape[1:]) for f in chunk)
                scores = self.reduce(self.maps_from(flat_out, flat_feats).float())
                cols.append(scores.reshape(n_models, -1).double().cpu())
        return torch.cat(cols, dim=1).numpy()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:

        net = self._check_fitted()
        save_detector(path, self.name, self.get_params(), {"frozen": self.frozen_state(), "net": net.state_dict()})

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> TrainedMapDetector:
        """A fitted detector from ``save``; the frozen backbone comes from the file, not from
        ``weights`` (no download needed)."""

        cfg, state = read_saved(path, cls.name)
        det = cls.from_saved(cfg, device=device)
        det.load_frozen_state(state["frozen"])
        net = det.new_net()
        net.load_state_dict(state["net"])
        det.net = net.eval()
        return det


def _flatten_models(out: Any) -> Any:
    """(B, n, ...) -> (B * n, ...) for a tensor or a tuple/list of tensors."""
    if isinstance(out, torch.Tensor):
        return out.reshape(-1, *out.shape[2:])
    return type(out)(_flatten_models(o) for o in out)

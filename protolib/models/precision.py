"""Numerics of the torch detectors: the ``precision`` setting, the finiteness check of features,
``deterministic`` runs, and the CPU/GPU agreement each detector is expected to reach.

``precision`` (a model-block key, ``fp32`` by default, as every reference runs): ``fp32`` runs
frozen passes and training in float32 with TF32 off for convolutions on CUDA (cuDNN's default
would round inputs to 10 mantissa bits); ``bf16`` runs frozen passes and training forward passes
under bfloat16 autocast; ``fp16`` runs frozen passes under float16 autocast and trains in float32
(float16 training would need loss scaling). Both are opt-in deviations from the references. On
the CPU ``fp32`` is a no-op, so CPU results do not depend on this module.

torch is imported inside the functions: the pixel path of the knn detector stays light.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from protolib.checks import InputMismatchError, check_finite

PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(precision: str, who: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"{who}: precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def compute_context(device: str, precision: str = "fp32", training: bool = False) -> contextlib.AbstractContextManager:
    """The context of a forward pass at ``precision`` on ``device`` (see the module doc)."""
    # here: torch (~2 s) only where a network runs; pixels jobs skip it
    import torch

    cuda = str(device).startswith("cuda")
    if precision == "fp32" or (precision == "fp16" and training):
        if not cuda:
            return contextlib.nullcontext()
        cudnn = torch.backends.cudnn
        return cudnn.flags(
            enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=False
        )
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda" if cuda else "cpu", dtype=dtype)


class FiniteFlags:
    """Whether every feature map seen so far is finite, per (model, layer), kept on the device and
    read once (:meth:`check`): no host sync per batch."""

    def __init__(self) -> None:
        self.flags: dict[tuple[str, str], Any] = {}

    def add(self, model: str, layer: str, values: Any) -> None:
        # here: torch (~2 s) only where a network runs; pixels jobs skip it
        import torch

        ok = torch.isfinite(values).all()
        key = (model, layer)
        self.flags[key] = ok if key not in self.flags else self.flags[key] & ok

    def check(self) -> None:
        """Raise (``protolib.checks.check_finite``'s error) naming the first model and layer with a
        NaN or infinite value."""

        for (model, layer), ok in self.flags.items():
            if not bool(ok):
                raise InputMismatchError(
                    f"{model} {layer} features: some values are NaN or infinite (half "
                    "precision overflows past 65504: try precision: fp32)"
                )


def check_features(values: Any, model: str, layer: str) -> None:
    """Raise naming the model and layer if ``values`` (array or tensor) holds NaN or infinity."""

    array = values if isinstance(values, np.ndarray) else values.detach().float().cpu().numpy()
    check_finite(array, f"{model} {layer} features")


#: ``CUBLAS_WORKSPACE_CONFIG`` value that cuBLAS needs for deterministic results (CUDA >= 10.2)
CUBLAS_WORKSPACE = ":4096:8"


def configure_run(deterministic: bool = False, device: str = "cpu") -> None:
    """Per-process torch settings of a job: ``deterministic: true`` asks torch for deterministic
    algorithms (an error where an operation has none), cuDNN deterministic, no autotuning and a
    fixed cuBLAS workspace; otherwise cuDNN autotunes on CUDA (every batch of a stage has the same
    shape, so the first pass's choice serves all)."""
    # here: torch (~2 s) only where a network runs; pixels jobs skip it
    import torch

    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    elif str(device).startswith("cuda"):
        torch.backends.cudnn.benchmark = True


@dataclass(frozen=True)
class Agreement:
    """How close a GPU run (float32) must come to the CPU run of the same config.

    ``rtol``: frozen-feature detectors, largest score difference relative to the largest score
    magnitude (asserted). ``min_rank_corr`` / ``max_auroc_diff``: trained detectors, Spearman
    correlation of the test scores and the test-AUROC difference (reported beside these expected
    values; single-image training amplifies rounding, ``vmap_training``'s module doc)."""

    kind: str  # "exact", "frozen" or "trained"
    rtol: float = 0.0
    min_rank_corr: float = 1.0
    max_auroc_diff: float = 0.0


#: the expected CPU <-> CUDA agreement per detector (precision fp32); docs/gpu.md shows this table
AGREEMENT: dict[str, Agreement] = {
    "knn_pixels": Agreement("exact"),
    "knn_resnet": Agreement("frozen", rtol=1e-3),
    "panda_single": Agreement("frozen", rtol=1e-3),
    "patchcore": Agreement("frozen", rtol=1e-3),
    "panda": Agreement("trained", min_rank_corr=0.95, max_auroc_diff=0.02),
    "fae": Agreement("trained", min_rank_corr=0.9, max_auroc_diff=0.02),
    "rd": Agreement("trained", min_rank_corr=0.8, max_auroc_diff=0.05),
}

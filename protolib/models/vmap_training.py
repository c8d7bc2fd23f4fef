"""Training many small single-image models at once: stacked parameters + ``torch.func.vmap``.

The per-sample score matrix of a trained detector (FAE, RD) needs one model per candidate image.
Instead of fitting them one after another, ``train_stacked`` keeps every model's parameters
stacked along a leading model axis, runs the forward pass of all models in one call
(``vmap`` over ``functional_call``; convolutions become grouped convolutions), sums the models'
losses and steps one optimizer over the stacked tensors. The models do not interact: the gradient
of the summed loss w.r.t. model i's slice is the gradient of model i's own loss, and Adam/SGD are
elementwise, so each slice follows exactly the trajectory that ``train_plain`` (an ordinary
module and ``torch.optim`` loop) gives the same model on its own: in float64 to ~1e-12 (tested).
In float32 the two differ by rounding, and single-image training amplifies rounding (Adam turns
noise in near-zero gradients into +-lr steps): after 20 steps scores differ by ~0.5 % (FAE) to a
few % (RD), as much as float32 and float64 runs of the *same* loop differ.

BatchNorm: torch's ``nn.BatchNorm2d`` updates its running statistics in place, which ``vmap``
refuses. ``BatchStatNorm2d`` is a BatchNorm2d written with plain tensor ops: in training mode
it normalises with the batch statistics (biased variance) and records them; the training loops
then update the running mean / (unbiased) variance with momentum 0.1 exactly as torch does, and
evaluation uses the running statistics. So the references' BatchNorm is kept, not replaced.
Dropout is applied with masks drawn outside the model (``noise``) from a seeded generator, so
both loops draw the same masks. Neither loop reads a value back to the host during training.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch.func import functional_call, vmap

NORMS = ("batch", "group", "instance", "none")


class BatchStatNorm2d(nn.Module):
    """BatchNorm2d (affine, running statistics) that also runs under ``vmap``; see module doc."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.batch_stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1)
        if self.training:
            n = x.numel() // x.shape[1]
            if n < 2:
                raise ValueError(
                    f"BatchNorm in training mode needs more than one value per channel, got input "
                    f"{tuple(x.shape)}; use a larger image_size"
                )
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            self.batch_stats = (mean.detach(), var.detach() * (n / (n - 1)))
        else:
            mean, var = self.running_mean, self.running_var
        scale = torch.rsqrt(var.view(shape) + self.eps) * self.weight.view(shape)
        return (x - mean.view(shape)) * scale + self.bias.view(shape)


def make_norm(kind: str, channels: int) -> nn.Module:
    """``batch`` (the references), ``group`` (GroupNorm, gcd(32, C) groups), ``instance``, ``none``."""
    if kind == "batch":
        return BatchStatNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def _stat_modules(module: nn.Module) -> list[tuple[str, BatchStatNorm2d]]:
    return [(name, m) for name, m in module.named_modules() if isinstance(m, BatchStatNorm2d)]


def _new_running(old: torch.Tensor, stat: torch.Tensor, momentum: float) -> torch.Tensor:
    return old * (1.0 - momentum) + stat * momentum


def train_plain(
    module: nn.Module,
    loss_fn: Callable[[nn.Module, Any, Any], torch.Tensor],
    batch_fn: Callable[[int], Any],
    steps: int,
    optimizer: torch.optim.Optimizer,
    noise_fn: Callable[[int, int], Any] | None = None,
    grad_clip: float | None = None,
) -> list[float]:
    """Ordinary training loop of one model: ``loss_fn(module, batch, noise)`` per step. The losses
    stay on the device and are read once, after the loop (no host sync per step)."""
    module.train()
    stats = _stat_modules(module)
    losses = []
    for step in range(steps):
        batch = batch_fn(step)
        noise = noise_fn(step, int(_first(batch).shape[0])) if noise_fn is not None else None
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(module, batch, noise)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_([p for p in module.parameters() if p.requires_grad], grad_clip)
        optimizer.step()
        with torch.no_grad():
            for _, m in stats:
                mean, var = m.batch_stats
                m.running_mean.copy_(_new_running(m.running_mean, mean, m.momentum))
                m.running_var.copy_(_new_running(m.running_var, var, m.momentum))
                m.batch_stats = None
        losses.append(loss.detach())
    module.eval()
    return torch.stack(losses).double().cpu().tolist() if losses else []


class _LossModule(nn.Module):
    def __init__(self, net: nn.Module, loss_fn: Callable[[nn.Module, Any, Any], torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self.loss_fn = loss_fn

    def forward(self, batch: Any, noise: Any) -> torch.Tensor:
        return self.loss_fn(self.net, batch, noise)


def stack_state(
    module: nn.Module, n_models: int, device: str | torch.device | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """n_models copies of the module's parameters and buffers, stacked on a new leading axis."""

    def rep(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().to(device) if device is not None else t.detach()
        return t.unsqueeze(0).repeat(n_models, *([1] * t.ndim)).contiguous()

    params = {k: rep(v) for k, v in module.named_parameters()}
    buffers = {k: rep(v) for k, v in module.named_buffers()}
    return params, buffers


def train_stacked(
    module: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    loss_fn: Callable[[nn.Module, Any, Any], torch.Tensor],
    batch: Any,
    steps: int,
    optimizer_factory: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    noise_fn: Callable[[int, int], Any] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """Train B models at once; ``params``/``buffers`` are stacked (leading axis B), ``batch`` a
    tensor or tuple of tensors with leading axis B (each model's own training batch, the same
    batch every step). ``noise_fn(step, per_model_batch_len)`` gives dropout masks shared by all
    models (all models are seeded alike). Returns the trained stacked params and buffers, and the
    last step's losses (B,)."""
    wrapper = _LossModule(module, loss_fn).train()
    stats = _stat_modules(module)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    buffers = {k: v.detach().clone() for k, v in buffers.items()}
    optimizer = optimizer_factory(list(params.values()))
    per_model_len = int(_first(batch).shape[1])  # batch size of each model

    def per_model(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: Any, noise: Any):
        state = {**{"net." + k: v for k, v in p.items()}, **{"net." + k: v for k, v in b.items()}}
        loss = functional_call(wrapper, state, (x, noise))
        recorded = []
        for _, m in stats:
            recorded.extend(m.batch_stats)
            m.batch_stats = None
        return loss, tuple(recorded)

    run = vmap(per_model, in_dims=(0, 0, 0, None))
    losses = torch.empty(0)
    for step in range(steps):
        noise = noise_fn(step, per_model_len) if noise_fn is not None else None
        optimizer.zero_grad(set_to_none=True)
        losses, recorded = run(params, buffers, batch, noise)
        losses.sum().backward()
        optimizer.step()
        with torch.no_grad():
            for j, (name, m) in enumerate(stats):
                for key, stat in (("running_mean", recorded[2 * j]), ("running_var", recorded[2 * j + 1])):
                    full = f"{name}.{key}"
                    buffers[full] = _new_running(buffers[full], stat, m.momentum)
    module.eval()
    return {k: v.detach() for k, v in params.items()}, buffers, losses.detach()


def _first(batch: Any) -> torch.Tensor:
    while isinstance(batch, (list, tuple)):
        batch = batch[0]
    return batch


def stacked_call(
    module: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    fn: Callable[..., Any],
    args: tuple,
    in_dims: tuple,
) -> Any:
    """``fn(module, *args)`` for every stacked model (eval mode), vmapped over the model axis.
    ``in_dims`` gives, per arg, 0 (one slice per model) or None (shared)."""
    module.eval()

    class _Call(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = module

        def forward(self, *a: Any) -> Any:
            return fn(self.net, *a)

    call = _Call()

    def per_model(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], *a: Any) -> Any:
        state = {**{"net." + k: v for k, v in p.items()}, **{"net." + k: v for k, v in b.items()}}
        return functional_call(call, state, a)

    return vmap(per_model, in_dims=(0, 0, *in_dims))(params, buffers, *args)


def adam(
    params: list[torch.Tensor], lr: float, betas: tuple[float, float], weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """torch's Adam, fused (one pass per tensor; much faster on the CPU) where this build supports it."""
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)


def minibatch_stream(n: int, batch_size: int, generator: torch.Generator):
    """Index batches like a shuffling DataLoader (drop_last False), epoch after epoch, forever."""
    batch_size = max(1, min(batch_size, n))
    while True:
        order = torch.randperm(n, generator=generator) if n > 1 else torch.zeros(1, dtype=torch.long)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]

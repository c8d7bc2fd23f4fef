"""Differentiable SSIM over (feature) maps, and Gaussian smoothing of anomaly maps, in torch.

``ssim_map`` follows the common SSIM formulation that the FAE reference (FeliMe/feature-autoencoder,
``fae/utils/pytorch_ssim.py``) uses: a normalised Gaussian window (sigma 1.5; the FAE model builds
it with size 5, ``pytorch_ssim``'s own default is 11) applied per channel with zero padding
("same" output size), C1 = 0.01**2, C2 = 0.03**2 (data range 1; the feature maps are not
rescaled). Tested equal to the reference's code in tests/test_fae_reference.py. It works on any
(N, C, H, W) tensor, under ``torch.func.vmap`` too.

``gaussian_blur`` reproduces ``scipy.ndimage.gaussian_filter`` on a 2-D map (mode ``reflect``,
``truncate=4``), which the PatchCore and Reverse Distillation references use to smooth their
anomaly maps (sigma 4).
"""

from __future__ import annotations

import math

import torch

C1 = 0.01**2
C2 = 0.03**2


def gaussian_window(
    size: int, sigma: float, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """1-D Gaussian of ``size`` taps centred at ``size // 2``, summing to one."""
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _blur_matrix(n: int, g: torch.Tensor, reflect: bool) -> torch.Tensor:
    """(n, n) matrix M with (M @ v) = v filtered by the odd 1-D kernel g along its length, with
    zero padding or (``reflect``) scipy's 'reflect' boundary, any kernel length."""
    radius = len(g) // 2
    rows = torch.arange(n, device=g.device).repeat_interleave(len(g))
    taps = torch.arange(-radius, radius + 1, device=g.device).repeat(n)
    cols = rows + taps
    weights = g.repeat(n)
    if reflect:
        cols = _reflect(cols, n)
    else:
        keep = (cols >= 0) & (cols < n)
        rows, cols, weights = rows[keep], cols[keep], weights[keep]
    # summed on the CPU (in order; CUDA's accumulate is nondeterministic), then moved: n * n values
    m = torch.zeros(n * n, dtype=g.dtype)
    m.index_put_(((rows * n + cols).cpu(),), weights.cpu(), accumulate=True)
    return m.view(n, n).to(g.device)


def _reflect(idx: torch.Tensor, n: int) -> torch.Tensor:
    """scipy 'reflect' (d c b a | a b c d | d c b a) index mapping, any distance from the edge."""
    idx = idx % (2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def _separable(x: torch.Tensor, g: torch.Tensor, reflect: bool) -> torch.Tensor:
    """Filter the last two axes of x with g along each (as two small matrix products: fast in any
    dtype, on any device, and under vmap)."""
    mh = _blur_matrix(x.shape[-2], g, reflect)
    mw = _blur_matrix(x.shape[-1], g, reflect)
    return mh @ x @ mw.T


def ssim_map(
    x: torch.Tensor, y: torch.Tensor, window_size: int = 11, sigma: float = 1.5, c1: float = C1, c2: float = C2
) -> torch.Tensor:
    """Per-position, per-channel SSIM of two (N, C, H, W) tensors; same shape as the inputs.

    The 2-D window is separable (the outer product of the 1-D window in the reference), so each
    local mean is two 1-D filterings with zero padding, equal to the reference's depthwise
    ``conv2d(padding=window_size // 2)`` to float rounding.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(
            f"ssim_map needs two (N, C, H, W) tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    g = gaussian_window(window_size, sigma, dtype=x.dtype, device=x.device)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return _separable(t, g, reflect=False)

    mu_x, mu_y = blur(x), blur(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sigma_xx = blur(x * x) - mu_xx
    sigma_yy = blur(y * y) - mu_yy
    sigma_xy = blur(x * y) - mu_xy
    return ((2 * mu_xy + c1) * (2 * sigma_xy + c2)) / ((mu_xx + mu_yy + c1) * (sigma_xx + sigma_yy + c2))


def ssim_loss(x: torch.Tensor, y: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """1 - mean SSIM over every position, channel and batch element (a scalar)."""
    return 1.0 - ssim_map(x, y, window_size, sigma).mean()


def gaussian_blur(maps: torch.Tensor, sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Smooth (N, H, W) maps like ``scipy.ndimage.gaussian_filter(map, sigma)`` (mode 'reflect',
    radius int(truncate * sigma + 0.5)); sigma <= 0 returns the maps unchanged."""
    if sigma <= 0:
        return maps
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = (g / g.sum()).to(dtype=maps.dtype, device=maps.device)
    return _separable(maps, g, reflect=True)


def top_fraction_mean(maps: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mean of the largest ``fraction`` of the values of each map (at least one value), shape (N,)."""
    flat = maps.reshape(len(maps), -1)
    k = max(1, int(math.ceil(fraction * flat.shape[1])))
    return flat.topk(k, dim=1).values.mean(1)

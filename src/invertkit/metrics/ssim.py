"""Structural similarity (Wang et al., 2004) per image, as scikit-image computes it.

Protocol: images quantised to uint8 and scored on [0, 1] (data range 1); Gaussian window of 11 taps
(sigma 1.5, truncated at 3.5 sigma), K1 = 0.01, K2 = 0.03, population (not sample) covariances; the
SSIM map is averaged over the pixels whose window lies inside the image (a 5-px border is dropped),
then over channels. Equals ``skimage.metrics.structural_similarity(x, y, gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1)``.

Images smaller than 11 px (tiny test generators) get the largest odd window that fits, the same
Gaussian truncated and renormalised; such scores are not comparable with standard SSIM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ImageError
from .protocol import check_pair, to_unit

WINDOW = 11  # skimage: 2 * int(3.5 * sigma + 0.5) + 1
SIGMA = 1.5


def _gaussian_1d(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).to(dtype)


def _blur(x: Tensor, g: Tensor) -> Tensor:
    """Separable 'valid' Gaussian filter of each channel of ``x`` (``M x 1 x H x W``)."""
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    return F.conv2d(x, g.view(1, 1, -1, 1))


def compute_dtype(device: torch.device) -> torch.dtype:
    """SSIM's arithmetic precision on ``device``: float64 on CPU, where it costs little and keeps the
    ``var = E[x^2] - E[x]^2`` cancellation far below the 1e-4 we promise; float32 on accelerators,
    where float64 is slow (tested on CPU to stay within 1e-4 of float64 as well)."""
    return torch.float64 if device.type == "cpu" else torch.float32


def ssim(a: Tensor, b: Tensor, *, quantized: bool = True, k1: float = 0.01, k2: float = 0.03,
         dtype: torch.dtype | None = None) -> Tensor:
    """Per-image SSIM of two ``N x C x H x W`` batches in [-1, 1] -> ``[N]`` in [-1, 1].

    Standard (skimage-equal) for H, W >= 11; smaller images use a shrunken window (module docstring).
    ``dtype``: the arithmetic's precision (default :func:`compute_dtype` of the images' device).
    """
    check_pair(a, b, "ssim")
    n, c, h, w = a.shape
    if min(h, w) < 1:
        raise ImageError(f"ssim: empty images {h}x{w}")
    window = min(WINDOW, min(h, w) - (1 - min(h, w) % 2))
    dtype = dtype or compute_dtype(a.device)
    x = to_unit(a, quantized).to(dtype).reshape(n * c, 1, h, w)
    y = to_unit(b, quantized).to(dtype).reshape(n * c, 1, h, w)
    g = _gaussian_1d(window, SIGMA, x.device, dtype)
    # Only windows fully inside the image are kept, which is exactly skimage's cropped mean.
    mx, my = _blur(x, g), _blur(y, g)
    vx = _blur(x * x, g) - mx * mx
    vy = _blur(y * y, g) - my * my
    cxy = _blur(x * y, g) - mx * my
    c1, c2 = k1**2, k2**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.reshape(n, c, -1).mean(dim=2).mean(dim=1).float()


class SSIM(nn.Module):
    """Module form of :func:`ssim` (returns the batch mean)."""

    def __init__(self, quantized: bool = True) -> None:
        super().__init__()
        self.quantized = quantized

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return ssim(a, b, quantized=self.quantized).mean()


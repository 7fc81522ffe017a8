"""Peak signal-to-noise ratio (per image)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .mse_mae import mse
from .protocol import finite_rows

__all__ = ["PSNR", "mse", "psnr"]  # mse lives in mse_mae.py; re-exported for old imports


def psnr(a: Tensor, b: Tensor, *, quantized: bool = True, max_db: float = 100.0) -> Tensor:
    """Per-image PSNR in dB, ``10 log10(1 / MSE)`` on [0, 1]; returns ``[N]``.

    Args:
        a, b: ``N x C x H x W`` in [-1, 1].
        quantized: score uint8-quantised images (the protocol default).
        max_db: value reported for identical images (MSE = 0) instead of infinity.

    An image with a non-finite value (NaN, inf) in ``a`` or ``b`` scores NaN, never ``max_db``.
    """
    err = mse(a, b, quantized=quantized)
    finite = finite_rows(a) & finite_rows(b) & torch.isfinite(err)
    db = torch.where(err > 0, -10.0 * torch.log10(err.clamp_min(1e-20)), torch.full_like(err, max_db))
    return torch.where(finite, db, torch.full_like(err, float("nan")))


class PSNR(nn.Module):
    """Module form of :func:`psnr` (returns the batch mean)."""

    def __init__(self, quantized: bool = True) -> None:
        super().__init__()
        self.quantized = quantized

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return psnr(a, b, quantized=self.quantized).mean()

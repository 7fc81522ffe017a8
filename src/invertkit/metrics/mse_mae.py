"""Mean squared error and mean absolute error per image, on [0, 1] after uint8 quantisation."""

from __future__ import annotations

from torch import Tensor, nn

from .protocol import as_batch_mean, check_pair, to_unit


def mse(a: Tensor, b: Tensor, *, quantized: bool = True) -> Tensor:
    """Per-image MSE on [0, 1] of two ``N x C x H x W`` batches in [-1, 1]; returns ``[N]``."""
    check_pair(a, b, "mse")
    return as_batch_mean((to_unit(a, quantized) - to_unit(b, quantized)) ** 2)


def mae(a: Tensor, b: Tensor, *, quantized: bool = True) -> Tensor:
    """Per-image mean absolute error on [0, 1] of two ``N x C x H x W`` batches in [-1, 1]; returns ``[N]``."""
    check_pair(a, b, "mae")
    return as_batch_mean((to_unit(a, quantized) - to_unit(b, quantized)).abs())


class MSE(nn.Module):
    """Module form of :func:`mse` (returns the batch mean)."""

    def __init__(self, quantized: bool = True) -> None:
        super().__init__()
        self.quantized = quantized

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return mse(a, b, quantized=self.quantized).mean()


class MAE(nn.Module):
    """Module form of :func:`mae` (returns the batch mean)."""

    def __init__(self, quantized: bool = True) -> None:
        super().__init__()
        self.quantized = quantized

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return mae(a, b, quantized=self.quantized).mean()

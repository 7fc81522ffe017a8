"""Perceptual distance on ImageNet MobileNetV2 features (offline), per image.

Protocol: images quantised to uint8, then mapped back to [-1, 1] and scored at their own resolution
(images below 32 px are bilinearly upsampled to 32 px) with
:func:`invertkit.features.mobilenet.perceptual_from_features`: per feature tap (strides 2, 4, 8, 16, 32) the
mean over locations of ``||f_a / |f_a| - f_b / |f_b|||^2``, averaged over taps; in [0, 4], lower is
better. It is not LPIPS (no learned heads, a different backbone): compare it only with itself.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..features.mobilenet import cached_mobilenet_v2, mobilenet_taps, perceptual_from_features
from .protocol import check_pair, to_unit


def perceptual(a: Tensor, b: Tensor, *, quantized: bool = True) -> Tensor:
    """MobileNetV2 perceptual distance of two ``N x C x H x W`` batches in [-1, 1] -> ``[N]``.

    Raises:
        CheckpointError: the MobileNetV2 weight file is not found.
    """
    check_pair(a, b, "perceptual")
    net = cached_mobilenet_v2(a.device)
    with torch.inference_mode():
        x = to_unit(a, quantized) * 2 - 1
        y = to_unit(b, quantized) * 2 - 1
        return perceptual_from_features(mobilenet_taps(net, x), mobilenet_taps(net, y))


class Perceptual(nn.Module):
    """Module form of :func:`perceptual` (returns the batch mean)."""

    def __init__(self, quantized: bool = True) -> None:
        super().__init__()
        self.quantized = quantized

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return perceptual(a, b, quantized=self.quantized).mean()

"""LPIPS v0.1 (Zhang et al., 2018) as a metric, per image.

Protocol: images quantised to uint8, mapped back to [-1, 1], then resized bilinearly to 256 x 256
(antialiased when shrinking; no resize when already 256 x 256; non-square images are stretched),
and scored with the AlexNet variant unless ``net="vgg"`` or ``"squeeze"`` is asked. Lower is better. The backbone
weights (torchvision's ``alexnet-owt-7be5be79.pth`` / ``vgg16-397923af.pth``) must be in torch's hub
cache or ``$INVERTKIT_HOME``; otherwise a CheckpointError says where to put them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..features.lpips import cached_lpips
from .protocol import check_pair, to_unit

SIZE = 256


def resize_for_lpips(x: Tensor, size: int = SIZE) -> Tensor:
    """Bilinear resize to ``size x size`` (antialiased when shrinking), or ``x`` if already that size."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    shrink = x.shape[-2] > size or x.shape[-1] > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def lpips(a: Tensor, b: Tensor, net: str = "alex", *, quantized: bool = True, size: int = SIZE) -> Tensor:
    """LPIPS distance of two ``N x C x H x W`` batches in [-1, 1], scored at ``size`` px -> ``[N]``.

    Raises:
        CheckpointError: the backbone or head weight file is not found (the message names the file,
            the folders searched and the download URL).
    """
    check_pair(a, b, "lpips")
    model = cached_lpips(net, a.device)
    with torch.inference_mode():
        x = resize_for_lpips(to_unit(a, quantized) * 2 - 1, size)
        y = resize_for_lpips(to_unit(b, quantized) * 2 - 1, size)
        return model(x, y)


class LPIPSMetric(nn.Module):
    """Module form of :func:`lpips` (returns the batch mean)."""

    def __init__(self, net: str = "alex", quantized: bool = True) -> None:
        super().__init__()
        self.net = net
        self.quantized = quantized

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return lpips(a, b, self.net, quantized=self.quantized).mean()

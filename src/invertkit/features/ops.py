"""Small tensor helpers shared by the feature distances (LPIPS, MobileNetV2 perceptual)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def unit_normalize(feat: Tensor, eps: float = 1e-10) -> Tensor:
    """Divide each spatial feature vector by its L2 norm over channels (+ eps), as LPIPS does."""
    return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def upsample_to_min(x: Tensor, min_size: int = 32) -> Tensor:
    """Bilinearly upsample images whose shorter side is below ``min_size`` (aspect kept); else unchanged."""
    h, w = x.shape[-2:]
    if min(h, w) >= min_size:
        return x
    scale = min_size / min(h, w)
    size = (max(min_size, round(h * scale)), max(min_size, round(w * scale)))
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def device_key(device: str | torch.device) -> str:
    """A canonical device name for caches: ``"cuda"`` and ``"cuda:0"`` (when current) are the same."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)

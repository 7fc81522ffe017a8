"""Image reconstruction losses used by inversion: pixel (MSE, L1) and feature (perceptual, LPIPS).

Every loss is an :class:`ImageLoss`: ``prepare(target)`` runs once per inversion (it computes the
target's features), ``forward(recon, prepared)`` runs every step and returns a per-image loss ``[N]``
that is differentiable w.r.t. ``recon``. Images are ``N x C x H x W`` floats in [-1, 1] and are NOT
quantised (these are training losses, not metrics). Masks and other degradations are applied by the
caller to both sides before these losses see the images.

Feature networks are loaded once per device and shared (see ``cached_*`` in
:mod:`invertkit.features`); a loss never builds modules inside ``forward``. Images with a side below
32 px are bilinearly upsampled to 32 px before a feature network sees them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ImageError
from ..features.lpips import LPIPS, cached_lpips
from ..features.mobilenet import MobileNetV2Features, cached_mobilenet_v2, mobilenet_taps, perceptual_from_features
from ..features.ops import upsample_to_min
from ..registry import Registry


def _check(recon: Tensor, target: Tensor, name: str) -> None:
    if recon.dim() != 4 or target.dim() != 4 or recon.shape[1:] != target.shape[1:]:
        raise ImageError(f"{name}: expected N x C x H x W batches of equal C, H, W, got {list(recon.shape)} and {list(target.shape)}")


def mse_loss(a: Tensor, b: Tensor) -> Tensor:
    """Per-image mean squared error on the [-1, 1] scale -> ``[N]`` (b may have batch size 1)."""
    _check(a, b, "mse_loss")
    return (a - b).pow(2).flatten(1).mean(dim=1)


def l1_loss(a: Tensor, b: Tensor) -> Tensor:
    """Per-image mean absolute error on the [-1, 1] scale -> ``[N]`` (b may have batch size 1)."""
    _check(a, b, "l1_loss")
    return (a - b).abs().flatten(1).mean(dim=1)


def perceptual_distance(a: Tensor, b: Tensor, net: MobileNetV2Features | None = None) -> Tensor:
    """MobileNetV2 perceptual distance of two batches in [-1, 1] -> ``[N]``.

    Defined in :func:`invertkit.features.mobilenet.perceptual_from_features`; ``net`` defaults to the
    shared ImageNet network on ``a.device``. Images below 32 px are upsampled to 32 px first.
    """
    _check(a, b, "perceptual_distance")
    net = net if net is not None else cached_mobilenet_v2(a.device)
    return perceptual_from_features(mobilenet_taps(net, a), mobilenet_taps(net, b))


class ImageLoss(nn.Module):
    """Base class: ``prepare(target)`` once, then ``forward(recon, prepared) -> [N]`` every step."""

    def prepare(self, target: Tensor) -> Any:
        """Whatever ``forward`` needs of the target, computed once without gradients."""
        return target.detach()

    def forward(self, recon: Tensor, prepared: Any) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class MSELoss(ImageLoss):
    """:func:`mse_loss` as an ImageLoss."""

    def forward(self, recon: Tensor, prepared: Tensor) -> Tensor:
        return mse_loss(recon, prepared)


class L1Loss(ImageLoss):
    """:func:`l1_loss` as an ImageLoss."""

    def forward(self, recon: Tensor, prepared: Tensor) -> Tensor:
        return l1_loss(recon, prepared)


class PerceptualLoss(ImageLoss):
    """MobileNetV2 perceptual distance (:func:`perceptual_distance`) with target taps cached."""

    def __init__(self, net: MobileNetV2Features) -> None:
        super().__init__()
        self._net = (net,)  # a tuple keeps the shared, frozen network out of this module's state

    @property
    def net(self) -> MobileNetV2Features:
        return self._net[0]

    def prepare(self, target: Tensor) -> list[Tensor]:
        with torch.no_grad():
            return mobilenet_taps(self.net, target)

    def forward(self, recon: Tensor, prepared: list[Tensor]) -> Tensor:
        return perceptual_from_features(mobilenet_taps(self.net, recon), prepared)


class LPIPSLoss(ImageLoss):
    """LPIPS v0.1 (AlexNet or VGG16) at the images' own resolution, with target taps cached."""

    def __init__(self, net: LPIPS) -> None:
        super().__init__()
        self._net = (net,)

    @property
    def net(self) -> LPIPS:
        return self._net[0]

    def prepare(self, target: Tensor) -> list[Tensor]:
        with torch.no_grad():
            return self.net.features(upsample_to_min(target))

    def forward(self, recon: Tensor, prepared: list[Tensor]) -> Tensor:
        return self.net.distance_from_features(self.net.features(upsample_to_min(recon)), prepared)


IMAGE_LOSSES: Registry[Callable[..., ImageLoss]] = Registry("image loss")


def _no_options(name: str, kw: dict[str, Any]) -> None:
    if kw:
        raise ConfigError(f"image loss {name!r} takes no options, got {', '.join(sorted(kw))}")


@IMAGE_LOSSES.register("mse")
def make_mse(device: str | torch.device = "cpu", **kw: Any) -> ImageLoss:
    """Pixel MSE on [-1, 1]."""
    _no_options("mse", kw)
    return MSELoss()


@IMAGE_LOSSES.register("l1")
def make_l1(device: str | torch.device = "cpu", **kw: Any) -> ImageLoss:
    """Pixel L1 on [-1, 1]."""
    _no_options("l1", kw)
    return L1Loss()


@IMAGE_LOSSES.register("perceptual")
def make_perceptual(device: str | torch.device = "cpu", path: str | os.PathLike[str] | None = None) -> ImageLoss:
    """MobileNetV2 (ImageNet) perceptual distance; ``path`` overrides the weight file lookup."""
    return PerceptualLoss(cached_mobilenet_v2(device, path))


def _lpips_factory(net: str) -> Callable[..., ImageLoss]:
    def make(
        device: str | torch.device = "cpu",
        backbone_path: str | os.PathLike[str] | None = None,
        head_path: str | os.PathLike[str] | None = None,
    ) -> ImageLoss:
        return LPIPSLoss(cached_lpips(net, device, backbone_path, head_path))

    make.__doc__ = f"LPIPS v0.1 with the {net} backbone (weight files from a path or torch's hub cache)."
    return make


IMAGE_LOSSES.add("lpips", _lpips_factory("alex"))
IMAGE_LOSSES.add("lpips-alex", _lpips_factory("alex"))
IMAGE_LOSSES.add("lpips-vgg", _lpips_factory("vgg"))

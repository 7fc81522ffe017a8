"""The metric protocol shared by every metric: how images are prepared before scoring."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ImageError

PROTOCOL = {
    "input_range": "[-1, 1] float, N x C x H x W",
    "quantized": "uint8 before scoring (round((x + 1) * 127.5)), as users see the images",
    "score_range": "[0, 1]",
    "psnr": "10 * log10(1 / MSE) per image on [0, 1] (equals 10 * log10(4 / MSE) on [-1, 1])",
    "mse_mae": "mean squared / absolute error per image on [0, 1]",
    "ssim": "Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 1, population covariance, "
    "mean over pixels whose window lies inside the image, then over channels (= skimage structural_similarity)",
    "lpips": "LPIPS v0.1, AlexNet backbone (torchvision ImageNet) + published linear heads, images resized "
    "bilinearly (antialiased when shrinking) to 256 x 256; lower is better",
    "perceptual": "ImageNet MobileNetV2 (torchvision weights) taps at strides 2/4/8/16/32, per tap mean over "
    "locations of the squared distance of channel-unit-normalised features, mean over taps; at the "
    "images' own resolution (upsampled to 32 px if smaller); in [0, 4], lower is better",
}


def quantize(images: Tensor) -> Tensor:
    """[-1, 1] images -> float images on [0, 1] that hold exact uint8 levels (clamped, rounded).
    A non-finite value (NaN, inf) stays NaN: clamping must not turn a diverged pixel into a score."""
    x = images.detach().float()
    q = ((x.clamp(-1, 1) + 1.0) * 127.5).round() / 255.0
    return torch.where(torch.isfinite(x), q, torch.full_like(q, float("nan")))


def check_pair(a: Tensor, b: Tensor, name: str) -> None:
    """Shape contract of every paired metric: same 4-d shape."""
    if a.dim() != 4 or a.shape != b.shape:
        raise ImageError(f"{name}: expected two N x C x H x W batches of the same shape, got {list(a.shape)} and {list(b.shape)}")


def to_unit(images: Tensor, quantized: bool) -> Tensor:
    """Map [-1, 1] to [0, 1], optionally through uint8 levels."""
    return quantize(images) if quantized else (images.float() + 1.0) / 2.0


def finite_rows(x: Tensor) -> Tensor:
    """``[N]`` booleans: which images of a batch-first tensor hold only finite values."""
    return torch.isfinite(x.detach()).flatten(1).all(dim=1) if x.dim() > 1 else torch.isfinite(x.detach())


def as_batch_mean(x: Tensor) -> Tensor:
    """Mean over all but the batch dimension: ``N x ...`` -> ``N``."""
    return x.flatten(1).mean(dim=1) if x.dim() > 1 else x




"""Structure distance (Tumanyan et al., CVPR 2022 "Splicing ViT Features"; PIE-Bench's first metric).

The self-similarity of a DINO ViT's attention keys describes an image's structure (layout, shapes)
while being insensitive to appearance. For an image, take the keys of the last block's attention
(layer 11 of 12) for every token, class token included, concatenate the heads
(``T x heads*d``), and form the ``T x T`` cosine-similarity matrix
``S_ij = <k_i, k_j> / max(|k_i| |k_j|, 1e-8)``. The structure distance of two images is the mean
squared difference of their matrices, ``mean_ij (S_ij - S'_ij)^2`` (``F.mse_loss``): 0 for identical
images, symmetric, in [0, 4].

Preprocessing as PIE-Bench's ``MetricsCalculator.calculate_structure_distance`` (model
``dino_vitb8``): the uint8 image as float **in [0, 255]** (the official code never divides by 255
before the ImageNet normalisation; ``pixel_scale=1.0`` gives Splice's [0, 1] instead), resized with
torchvision's ``Resize(224, max_size=480)`` (shorter side to 224, longer side capped at 480,
bilinear, no antialiasing: torchvision 0.13's behaviour on tensors, the version PnP Inversion pins),
normalised with mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). At 224 px a ViT-B/8 has
``T = 1 + 28 * 28 = 785`` tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ImageError
from ..features.dino_vit import DinoViT
from .protocol import finite_rows, quantize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

STRUCTURE_PROTOCOL = (
    "PIE-Bench structure distance: DINO ViT-B/8 keys of the last block (class token included, heads concatenated), "
    "T x T cosine self-similarity (norm product clamped at 1e-8), mean squared difference; input uint8 as [0, 255] "
    "floats, Resize(224, max_size=480) bilinear without antialiasing, ImageNet mean/std"
)


def resized_size(h: int, w: int, size: int = 224, max_size: int | None = 480) -> tuple[int, int]:
    """torchvision ``Resize(size, max_size)`` output ``(H, W)`` for an ``h x w`` image: the shorter side
    to ``size``, the longer ``int(size * long / short)``, both rescaled if the longer exceeds ``max_size``."""
    short, long = min(h, w), max(h, w)
    new_short, new_long = size, int(size * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if h <= w else (new_long, new_short)


def dino_input(images: Tensor, *, size: int = 224, max_size: int | None = 480, pixel_scale: float = 255.0,
               antialias: bool = False, quantized: bool = True) -> Tensor:
    """``N x 3 x H x W`` images in [-1, 1] -> the ViT's input (resized, ImageNet-normalised).

    ``pixel_scale``: 255 as PIE-Bench (pixels in [0, 255] before normalising), 1 as Splice."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ImageError(f"structure distance: expected N x 3 x H x W images, got {list(images.shape)}")
    x = (quantize(images) if quantized else (images.float() + 1) / 2) * pixel_scale
    h, w = resized_size(images.shape[-2], images.shape[-1], size, max_size)
    if (h, w) != tuple(images.shape[-2:]):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=antialias)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def cosine_self_similarity(tokens: Tensor, eps: float = 1e-8) -> Tensor:
    """``N x T x D`` -> ``N x T x T`` cosine similarities, the norm product clamped at ``eps`` (Splice)."""
    norms = tokens.norm(dim=2, keepdim=True)
    return (tokens @ tokens.transpose(1, 2)) / (norms @ norms.transpose(1, 2)).clamp_min(eps)


def keys_self_similarity(vit: DinoViT, x: Tensor, layer: int = -1) -> Tensor:
    """Self-similarity of block ``layer``'s keys for ViT inputs ``x`` (``N x 3 x H x W``) -> ``N x T x T``."""
    k = vit.keys(x, layer)  # N x heads x T x d
    n, h, t, d = k.shape
    return cosine_self_similarity(k.transpose(1, 2).reshape(n, t, h * d))


def structure_distance(a: Tensor, b: Tensor, vit: DinoViT, *, layer: int = -1, size: int = 224,
                       max_size: int | None = 480, pixel_scale: float = 255.0, antialias: bool = False) -> Tensor:
    """PIE-Bench structure distance of two ``N x 3 x H x W`` batches in [-1, 1] -> ``[N]`` in [0, 4]
    (lower = more similar structure; the paper prints it x 10^3). Images with a non-finite pixel -> NaN."""
    if a.shape != b.shape:
        raise ImageError(f"structure distance: images of different shapes {list(a.shape)} and {list(b.shape)}")
    opts = dict(size=size, max_size=max_size, pixel_scale=pixel_scale, antialias=antialias)
    dev = next(vit.parameters()).device
    with torch.inference_mode():
        sa = keys_self_similarity(vit, dino_input(a.to(dev), **opts), layer)
        sb = keys_self_similarity(vit, dino_input(b.to(dev), **opts), layer)
        d = (sa - sb).pow(2).flatten(1).mean(dim=1).float().cpu()
    ok = (finite_rows(a) & finite_rows(b)).cpu()
    return torch.where(ok, d, torch.full_like(d, float("nan")))

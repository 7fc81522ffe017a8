"""Stroke thickness and slant of handwritten digits, from image moments.

Castro et al. 2019, "Morpho-MNIST: Quantitative Assessment and Diagnostics for Representation Learning",
measure a digit by its binarised ink:

- **slant**: the shear of the ink about its centroid, from the second central moments:
  ``slant = -atan(mu11 / mu02)`` (radians; positive = the top leans right). ``mu11`` and ``mu02`` are
  the central moments over (column x, row y) with rows growing downwards, so ink whose column falls as
  the row grows (a right-leaning stroke) has ``mu11 < 0``.
- **thickness**: ink area (the zeroth moment of the binarised image) over stroke length (the pixel count
  of its skeleton), in pixels of the image as given.

Images are ``[N, 1, H, W]`` (or ``[N, H, W]``) tensors in [-1, 1] with white ink on black, as MNIST
digits and the models trained on them are; ink is ``value > threshold`` (default 0: half intensity).
An image without ink has no shape: both measures are NaN for it (callers drop or report it, never
score it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError


@dataclass(frozen=True)
class DigitShape:
    """Per-image measures: ``thickness [N]`` (pixels) and ``slant [N]`` (radians), NaN where no ink."""

    thickness: Tensor
    slant: Tensor


def _ink(images: Tensor, threshold: float) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() not in (3, 4) or (images.dim() == 4 and images.shape[1] != 1):
        shape = list(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ConfigError(f"digit measures take greyscale images [N, 1, H, W] or [N, H, W] in [-1, 1], got {shape}")
    x = images.detach().float().cpu()
    return (x.reshape(x.shape[0], x.shape[-2], x.shape[-1]) > threshold)


def slant(images: Tensor, threshold: float = 0.0) -> Tensor:
    """Slant ``[N]`` in radians (positive: leaning right) from the binarised ink's central moments."""
    ink = _ink(images, threshold).double()
    n, h, w = ink.shape
    ys = torch.arange(h, dtype=torch.float64).view(1, h, 1)
    xs = torch.arange(w, dtype=torch.float64).view(1, 1, w)
    m00 = ink.sum((1, 2))
    safe = m00.clamp_min(1)
    cx = (ink * xs).sum((1, 2)) / safe
    cy = (ink * ys).sum((1, 2)) / safe
    dx, dy = xs - cx.view(n, 1, 1), ys - cy.view(n, 1, 1)
    mu11 = (ink * dx * dy).sum((1, 2))
    mu02 = (ink * dy * dy).sum((1, 2))
    out = -torch.atan(mu11 / mu02.clamp_min(1e-12))
    return torch.where(m00 > 0, out, torch.full_like(out, math.nan)).float()


def thickness(images: Tensor, threshold: float = 0.0) -> Tensor:
    """Mean stroke thickness ``[N]`` in pixels: ink area / skeleton length (NaN where no ink)."""
    from skimage.morphology import skeletonize

    ink = _ink(images, threshold).numpy()
    out = np.full(ink.shape[0], np.nan, dtype=np.float64)
    for i, mask in enumerate(ink):
        area = mask.sum()
        if area:
            length = max(int(skeletonize(mask).sum()), 1)
            out[i] = area / length
    return torch.from_numpy(out).float()


def digit_shape(images: Tensor, threshold: float = 0.0) -> DigitShape:
    """Thickness and slant of each image (see the module docstring)."""
    return DigitShape(thickness=thickness(images, threshold), slant=slant(images, threshold))

"""Latent regularisers: per-image, differentiable terms on latents and noise maps.

Every function returns ``[N]`` (one value per image), so a batch of independent inversions can be
weighted, logged and stopped per image.

- :func:`noise_regularizer`: NVIDIA's projector (stylegan2-ada-pytorch ``projector.py``) penalty on
  spatial autocorrelation of optimised noise maps, at all scales down to 8 x 8.
- :func:`normalize_noise_`: the projector's in-place renormalisation of noise maps after each step.
- :func:`latent_prior`: how far a latent is from where the generator's samples live, per space.
- :func:`wplus_spread`: how far the rows of a w+ code drift from each other (e4e's delta regulariser).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import LatentSpaceError
from ..generators.capabilities import StyleSpaces, require

__all__ = [
    "noise_regularizer",
    "normalize_noise_",
    "latent_prior",
    "wplus_spread",
    "NoiseRegularizer",
    "LatentPrior",
    "WPlusSpread",
    "PRIOR_SPACES",
]

PRIOR_SPACES = ("z", "z-sphere", "w", "w+", "p", "pn", "s")


def _as_4d(x: Tensor) -> Tensor:
    if x.ndim == 2:
        return x[None, None]
    if x.ndim == 3:
        return x.unsqueeze(1)
    if x.ndim != 4:
        raise LatentSpaceError(f"noise maps must be [H, W], [N, H, W] or [N, 1, H, W], got {list(x.shape)}")
    return x


def noise_regularizer(noise: Mapping[str, Tensor]) -> Tensor:
    """Multi-scale autocorrelation penalty of noise maps (NVIDIA projector), ``[N]``.

    For each map ``x`` (``[N, 1, H, W]``; ``[H, W]`` counts as one shared map) and each scale, add
    ``mean(x * roll(x, 1, W))^2 + mean(x * roll(x, 1, H))^2`` (means per image), then halve the
    resolution by 2 x 2 average pooling until it is 8 x 8 or smaller. For N = 1 this is exactly the
    projector's ``reg_loss``. Maps with batch 1 broadcast against maps with batch N.
    """
    total: Tensor | int = 0
    for v in noise.values():
        x = _as_4d(v)
        while True:
            total = total + (x * torch.roll(x, shifts=1, dims=3)).mean(dim=(1, 2, 3)).square()
            total = total + (x * torch.roll(x, shifts=1, dims=2)).mean(dim=(1, 2, 3)).square()
            if x.shape[2] <= 8:
                break
            x = F.avg_pool2d(x, kernel_size=2)
    if isinstance(total, int):
        raise LatentSpaceError("noise_regularizer needs at least one noise map")
    return total


@torch.no_grad()
def normalize_noise_(noise: Mapping[str, Tensor], eps: float = 1e-8) -> Mapping[str, Tensor]:
    """In place: each map of each image to zero mean and unit variance (``x -= mean; x *= rsqrt(mean(x^2))``).

    Returns ``noise`` for chaining. Works on leaf tensors that require grad (runs under no_grad).
    """
    for v in noise.values():
        x = _as_4d(v)
        x.sub_(x.mean(dim=(1, 2, 3), keepdim=True))
        x.mul_((x.square().mean(dim=(1, 2, 3), keepdim=True) + eps).rsqrt())
    return noise


def wplus_spread(latent: Tensor, G=None) -> Tensor:
    """Mean squared distance of each w+ row to the image's mean row, ``[N]`` (0 for a w code).

    ``mean_{l, d} (w_l - mean_l w_l)_d^2``; with ``G`` (StyleGAN2) divided by the mapping output
    variance, so 1 means rows as far apart as independent samples' spread (times (L-1)/L). e4e
    (Tov et al. 2021) regularises ``sum_l ||w_l - w_0||``; the mean row makes the term symmetric in
    the rows and independent of their count.
    """
    if latent.ndim == 2:
        return torch.zeros(latent.shape[0], device=latent.device, dtype=latent.dtype)
    if latent.ndim != 3:
        raise LatentSpaceError(f"wplus_spread needs [N, num_ws, w_dim] or [N, w_dim], got {list(latent.shape)}")
    out = (latent - latent.mean(dim=1, keepdim=True)).square().mean(dim=(1, 2))
    if G is not None:
        out = out / require(G, StyleSpaces, "the w+ spread term").w_variance()
    return out


def latent_prior(G, latent: Tensor, space: str) -> Tensor:
    """Distance of each latent from the generator's prior, ``[N]`` (differentiable).

    Per space:

    - ``z``, ``z-sphere``: ``(mean(z^2) - 1)^2``, the squared deviation from the Gaussian shell
      (a d-dimensional N(0, I) sample has ``mean(z^2) ~ 1``; penalising ``mean(z^2)`` itself would pull
      z toward the atypical origin). Any generator.
    - ``w``, ``w+``: ``mean((w - w_avg)^2) / var_w``, with ``var_w`` the mapping output's per-dimension
      variance averaged over dimensions (estimated once with the P-space fit, cached): ~1 for samples.
    - ``pn``: ``mean(v^2)``, the N(0, I) negative log-likelihood up to constants: ~1 for samples
      (Zhu et al. 2020).
    - ``p``: the same after conversion to pn.
    - ``s``: ``mean((s - s_mean)^2)``, with ``s_mean`` the styles of ``w_avg`` (``G.mean_latent("s")``),
      unnormalised.
    """
    if space in ("z", "z-sphere"):
        G.check_space("z")
        return (latent.flatten(1).square().mean(dim=1) - 1.0).square()
    G.check_space(space)
    if space in ("w", "w+"):
        S = require(G, StyleSpaces, f"the prior of {space} latents")
        d = latent - S.mean_latent("w")
        return d.square().flatten(1).mean(dim=1) / S.w_variance()
    if space == "p":
        latent, space = G.convert(latent, "p", "pn"), "pn"
    if space == "pn":
        return latent.square().flatten(1).mean(dim=1)
    if space == "s":
        return (latent - G.mean_latent("s")).square().flatten(1).mean(dim=1)
    raise LatentSpaceError(f"latent_prior has no prior for space {space!r}; spaces with one: {', '.join(PRIOR_SPACES)}")


class NoiseRegularizer(nn.Module):
    """Module form of :func:`noise_regularizer` (``[N]``)."""

    def forward(self, noise: Mapping[str, Tensor]) -> Tensor:
        return noise_regularizer(noise)


class LatentPrior(nn.Module):
    """Module form of :func:`latent_prior` for a fixed generator and space (``[N]``)."""

    def __init__(self, G, space: str) -> None:
        super().__init__()
        self.G, self.space = G, space

    def forward(self, latent: Tensor) -> Tensor:
        return latent_prior(self.G, latent, self.space)


class WPlusSpread(nn.Module):
    """Module form of :func:`wplus_spread` (``[N]``)."""

    def __init__(self, G=None) -> None:
        super().__init__()
        self.G = G

    def forward(self, latent: Tensor) -> Tensor:
        return wplus_spread(latent, self.G)
